//! A path's outer connection facing a hostile ingress (item 1 of issue 11,
//! client side): an "ingress" that answers the tunnel request with a
//! HEADERS frame declaring 4 GiB and streams zeros gets a failed path back
//! at once, not the client's memory.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use openrelay_client::path::{BuildError, Path};
use openrelay_client::relay::Relay;
use openrelay_config::{PathConfig, RelayEntry};
use openrelay_transport::testing::EndlessHeadServer;
use openrelay_types::RelayRole;
use openrelay_wire::h3frame::code;

fn entry(role: RelayRole, server: &EndlessHeadServer, operator: &str) -> Relay {
    let entry = RelayEntry {
        name: format!("{operator}-{role}"),
        role,
        operator: operator.to_owned(),
        addr: server.addr,
        key: server.pin,
        operator_key: None,
        country: None,
        city: None,
        network: None,
        bandwidth_bps: None,
    };
    openrelay_client::relay::from_config(&[entry])
        .unwrap()
        .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_tunnel_answer_fails_the_path_at_once() {
    let hostile = EndlessHeadServer::start(256 << 20).unwrap();
    let ingress = entry(RelayRole::Ingress, &hostile, "a");
    let egress = entry(RelayRole::Egress, &hostile, "b");
    // A long handshake timeout: the failure must come from the guard, not
    // from the clock.
    let config = PathConfig {
        handshake_timeout_ms: 30_000,
        ..PathConfig::default()
    };
    let started = Instant::now();
    let built = Path::build(&ingress, &egress, None, &config, None).await;
    let Err(error) = built else {
        panic!("a path through a hostile ingress was built");
    };
    // The guard refused the head (HTTP/3 frame_too_large), h3 reported it.
    assert!(
        matches!(&error, BuildError::Handshake { reason, .. } if reason.to_string().contains("frame_too_large")),
        "the tunnel request failed: {error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The client stopped the stream (H3_EXCESSIVE_LOAD), or closed the
    // failed path's connection first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stops = hostile.stops.lock().unwrap().clone();
    assert!(
        stops.iter().all(|&c| c == code::H3_EXCESSIVE_LOAD),
        "{stops:?}"
    );
}
