//! A client checks a directory relay's own signatures before its first use
//! (issue 16, item 4): a directory whose validators signed a descriptor
//! with a bad relay signature is accepted, and the client never sends a
//! packet to that relay, nor builds a path through it in either hop.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use openrelay_client::attestation::AttestationVerdict;
use openrelay_client::path::{BuildError, Hop, Path};
use openrelay_client::relay::Relay;
use openrelay_config::PathConfig;
use openrelay_directory::{DirectoryError, Signature, SignedDescriptor, Signer, verify_directory};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;

/// A UDP socket standing where a relay listens: whatever the client sends
/// the relay arrives here.
fn listener() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Relay `relay` of the fixture network, listening at `addr`; with
/// `forged`, its relay signature has one bit flipped (validators signed it
/// anyway).
fn descriptor_at(
    relay: u8,
    operator: u8,
    role: RelayRole,
    addr: SocketAddr,
    forged: bool,
) -> SignedDescriptor {
    let mut fields = descriptor_fields(relay, operator, role);
    fields.endpoints = vec![addr];
    let honest = sign(fields, relay, operator);
    if !forged {
        return honest;
    }
    let mut bad = honest.relay_signature().to_bytes();
    bad[7] ^= 0x01;
    SignedDescriptor::from_parts(
        honest.descriptor().clone(),
        Signature::from_bytes(bad),
        honest.operator_signature(),
        honest.quic_signature(),
    )
}

fn received_anything(socket: &UdpSocket) -> bool {
    let mut buf = [0u8; 2048];
    socket.recv_from(&mut buf).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_a_forged_signature_is_never_on_a_path() {
    let sockets: Vec<(UdpSocket, SocketAddr)> = (0..4).map(|_| listener()).collect();
    // Relay 0 (an ingress) and relay 3 (an egress) carry forged relay
    // signatures; relays 1 (egress) and 2 (ingress) are honest.
    let roles = [
        RelayRole::Ingress,
        RelayRole::Egress,
        RelayRole::Ingress,
        RelayRole::Egress,
    ];
    let descriptors = (0u8..4)
        .map(|i| {
            let (_, addr) = &sockets[usize::from(i)];
            descriptor_at(i, i, roles[usize::from(i)], *addr, i == 0 || i == 3)
        })
        .collect();
    let operators = (0..4).map(profile).collect();
    let directory = directory_with(1, operators, descriptors);
    // The validators signed it: a client accepts the directory.
    let verified = verify_directory(signed(&directory, &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    let relays: Vec<Relay> = verified
        .relays()
        .map(|r| Relay::from_directory(&r, r.endpoints()[0], AttestationVerdict::NotChecked))
        .collect();
    let relay = |i: u8| {
        relays
            .iter()
            .find(|r| r.pin() == quic_pin(i))
            .unwrap()
            .clone()
    };
    let config = PathConfig {
        handshake_timeout_ms: 300,
        ..PathConfig::default()
    };

    for (ingress, egress, hop, forged) in [(0, 1, Hop::Ingress, 0), (2, 3, Hop::Egress, 3)] {
        let error = Path::build(&relay(ingress), &relay(egress), None, &config, None)
            .await
            .err()
            .unwrap();
        assert_eq!(
            error,
            BuildError::BadListing {
                hop,
                relay: relay(forged).name,
                source: Box::new(DirectoryError::BadSignature {
                    which: Signer::Relay(relay_key(forged).id()),
                }),
            }
        );
        // Blamed on the forged hop, so the controller excludes that relay.
        assert_eq!(error.hop(), Some(hop));
        // Nothing reached either relay: the check comes before any packet.
        for i in [ingress, egress] {
            assert!(!received_anything(&sockets[usize::from(i)].0), "relay {i}");
        }
    }

    // The honest pair passes the check: the client does send its QUIC
    // Initial to the ingress (no relay answers here, so the handshake
    // times out), which shows the sockets above would have seen one.
    let error = Path::build(&relay(2), &relay(1), None, &config, None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            BuildError::Handshake {
                hop: Hop::Ingress,
                ..
            }
        ),
        "{error}"
    );
    assert!(received_anything(&sockets[2].0));
}
