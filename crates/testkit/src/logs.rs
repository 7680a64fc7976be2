//! Reading logs: events and their levels, lines with a needle, ports
//! mentioned, and the lines no healthy run writes (panics, warnings).

#![cfg(feature = "harness")]

/// Where `number` occurs in `text` as a whole number (a run of digits not
/// part of a longer run) in a position where it would be a port: after `:`
/// (as in `host:port` or `port: 443`), after a field whose name contains
/// `port` (`port=443`, `dst_port=443`), or as a bare token (between
/// whitespace, quotes, brackets or commas). `counter=443`-style values of
/// other fields (byte counts) are not reported: they are numbers, not ports.
/// Returns the offending lines.
pub fn port_mentions(text: &str, number: u16) -> Vec<String> {
    let needle = number.to_string();
    let mut hits = Vec::new();
    for line in text.lines() {
        let bytes = line.as_bytes();
        let mut from = 0;
        while let Some(i) = line[from..].find(&needle).map(|i| i + from) {
            let end = i + needle.len();
            from = end;
            let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
            let digit_after = bytes.get(end).is_some_and(u8::is_ascii_digit);
            if digit_before || digit_after {
                continue;
            }
            let raw_prev = line[..i].chars().last();
            let before = line[..i].trim_end_matches(' ');
            let delimiter_after = bytes.get(end).is_none_or(|b| b" \t\"')]},;/.".contains(b));
            let is_port = if before.ends_with(':') {
                true
            } else if raw_prev == Some('=') {
                let key = before[..before.len() - 1]
                    .rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .next()
                    .unwrap_or_default();
                key.to_ascii_lowercase().contains("port")
            } else {
                raw_prev.is_none_or(|c| " \t\"'([{,".contains(c)) && delimiter_after
            };
            if is_port {
                hits.push(line.to_owned());
                break;
            }
        }
    }
    hits
}

/// The lines of `text` containing `needle`.
pub fn lines_with(text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The level of a `tracing_subscriber::fmt` line (`2026-..Z  INFO target: ..`).
pub fn level_of(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let stamp = words.next()?;
    if !stamp.ends_with('Z') || !stamp.contains('T') {
        return None;
    }
    words
        .next()
        .filter(|l| ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(l))
}

/// Splits a log into events with their level; a line without a timestamp
/// continues the previous event.
pub fn events(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        match level_of(line) {
            Some(level) => out.push((level.to_owned(), line.to_owned())),
            None => match out.last_mut() {
                Some((_, event)) => {
                    event.push('\n');
                    event.push_str(line);
                }
                None => out.push(("UNKNOWN".to_owned(), line.to_owned())),
            },
        }
    }
    out
}

/// The lines of `text` that tell of a panic (Rust's `panicked at`): none
/// in any healthy process's output.
pub fn panics(text: &str) -> Vec<String> {
    lines_with(text, "panicked")
}

/// The WARN lines of a log: none where nothing went wrong.
pub fn warnings(text: &str) -> Vec<String> {
    lines_with(text, " WARN ")
}
