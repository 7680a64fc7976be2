//! The comparison as an SVG line plot, written by hand: a plotting crate
//! would be a large dependency for a few polylines.
//!
//! x: number of paths `n` (0 to about twice the report's `n`); y: exact
//! `P(at least one of n paths compromised)`. One `<polyline>` per compared
//! scenario (and nothing else is a polyline), colour by policy, dashed for
//! the Sybil split; a dotted line at the target probability.

use std::fmt::Write as _;

use crate::exact::prob_any;
use crate::policy::Policy;
use crate::report::{Adversary, Report};

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Points per line: smooth enough at this size.
const SAMPLES: u64 = 200;

fn colour(policy: Policy) -> &'static str {
    match policy {
        Policy::RANDOM => "#1f77b4",
        Policy::OPERATOR_DIVERSE => "#d62728",
        Policy::STAKE_WEIGHTED => "#2ca02c",
        Policy::CAPPED => "#9467bd",
        _ => "#7f7f7f",
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plot of `report.comparison`.
pub fn plot(report: &Report) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let span = (2 * report.paths).max(10) as f64;
    let step = nice_step(span / 5.0);
    let x_max = (span / step).ceil() * step;
    let x = |n: f64| LEFT + n / x_max * plot_w;
    let y = |p: f64| TOP + (1.0 - p) * plot_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">Probability that some path has ingress and egress of the adversary</text>"#,
        LEFT + plot_w / 2.0
    );
    // Grid, ticks and tick labels.
    let mut tick = 0.0;
    while tick <= x_max + step / 2.0 {
        let px = x(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#e5e5e5"/><line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="black"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 19.0,
            tick
        );
        tick += step;
    }
    for i in 0..=5 {
        let p = f64::from(i) / 5.0;
        let py = y(p);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e5e5e5"/><line x1="{:.1}" y1="{py:.1}" x2="{LEFT}" y2="{py:.1}" stroke="black"/><text x="{:.1}" y="{:.1}" text-anchor="end">{p:.1}</text>"##,
            LEFT + plot_w,
            LEFT - 5.0,
            LEFT - 8.0,
            py + 4.0
        );
    }
    // Axes and their labels.
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h,
        TOP + plot_h
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">number of paths n</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">P(at least one of n paths compromised)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // Target probability.
    let ty = y(report.target);
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#555" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">target p = {}</text>"##,
        LEFT + plot_w,
        LEFT + plot_w - 4.0,
        ty - 4.0,
        report.target
    );
    // One line per scenario, and the legend.
    let mut legend_y = TOP + 10.0;
    let legend_x = LEFT + plot_w + 20.0;
    for sc in &report.comparison {
        let Ok(odds) = &sc.odds else { continue };
        let dash = if matches!(sc.adversary, Adversary::Sybil(_)) {
            r#" stroke-dasharray="7 4""#
        } else {
            ""
        };
        let points: Vec<String> = (0..=SAMPLES)
            .map(|i| {
                let n = (x_max * i as f64 / SAMPLES as f64).round();
                format!("{:.1},{:.1}", x(n), y(prob_any(odds.per_path, n as u64)))
            })
            .collect();
        let label = format!("{}, {}", sc.policy, sc.adversary.label());
        // A line at zero lies on the axis: say so in the legend.
        let legend = if odds.per_path == 0.0 {
            format!("{label} (never)")
        } else {
            label.clone()
        };
        let _ = writeln!(
            out,
            r#"<polyline class="scenario" data-scenario="{}" fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            escape(&label),
            colour(sc.policy),
            points.join(" ")
        );
        let _ = writeln!(
            out,
            r#"<line x1="{legend_x:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 28.0,
            colour(sc.policy),
            legend_x + 34.0,
            legend_y + 4.0,
            escape(&legend)
        );
        legend_y += 20.0;
    }
    let _ = writeln!(
        out,
        r##"<text x="{legend_x:.1}" y="{:.1}" fill="#555">dashed: adversary split</text><text x="{legend_x:.1}" y="{:.1}" fill="#555">into Sybil identities</text>"##,
        legend_y + 8.0,
        legend_y + 22.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::report::{SimOptions, run};

    #[test]
    fn one_polyline_per_scenario() {
        let report = run(&SimOptions {
            trials: 0,
            ..SimOptions::default()
        })
        .unwrap();
        let svg = plot(&report);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), report.comparison.len());
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        assert!(svg.contains("stake-weighted, 10 identities"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(nice_step(693.2), 1000.0);
        assert_eq!(nice_step(150.0), 200.0);
        assert_eq!(nice_step(4.0), 5.0);
        assert_eq!(nice_step(0.1), 1.0);
    }
}
