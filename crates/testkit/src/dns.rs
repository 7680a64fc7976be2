//! A DNS server whose answers the test writes (encoded by hickory-proto,
//! an independent implementation), a nameserver that never answers, and
//! DNS messages to ask and read.

#![cfg(feature = "harness")]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use openrelay_transport::task::AbortOnDrop;
use tokio::net::UdpSocket;

/// The A and AAAA records a [`DnsServer`] gives each name (lowercase, with
/// the final dot), in order.
pub type Zone = HashMap<String, Vec<IpAddr>>;

/// A running [`dns_server`].
#[derive(Debug)]
pub struct DnsServer {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Queries received.
    pub queries: Arc<AtomicUsize>,
    _task: AbortOnDrop<()>,
}

/// A DNS server on a UDP socket of `ip`: A and AAAA queries for names in
/// its zone get those records (answer names compressed, as servers do),
/// anything else an empty NOERROR answer.
pub async fn dns_server(ip: IpAddr, zone: Zone) -> DnsServer {
    let socket = UdpSocket::bind((ip, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let zone = Arc::new(zone);
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&queries);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let answer = answer(&query, &zone);
            let _ = socket.send_to(&answer.to_vec().unwrap(), from).await;
        }
    });
    DnsServer {
        addr,
        queries,
        _task: AbortOnDrop(task),
    }
}

fn answer(query: &Message, zone: &Zone) -> Message {
    let mut answer = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    answer.metadata.response_code = ResponseCode::NoError;
    for question in &query.queries {
        answer.add_query(question.clone());
        let name = question.name().to_ascii().to_ascii_lowercase();
        for ip in zone.get(&name).into_iter().flatten() {
            let data = match (question.query_type(), ip) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(A::from(*v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA::from(*v6)),
                _ => continue,
            };
            answer.add_answer(Record::from_rdata(question.name().clone(), 60, data));
        }
    }
    answer
}

/// A nameserver that takes queries and never answers (the socket is held,
/// so queries are not refused by ICMP either).
pub async fn silent_nameserver(addr: SocketAddr) -> UdpSocket {
    UdpSocket::bind(addr).await.unwrap()
}

/// A zone from (name, addresses) pairs.
pub fn zone(entries: &[(&str, &[&str])]) -> Zone {
    entries
        .iter()
        .map(|(name, ips)| {
            (
                (*name).to_owned(),
                ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            )
        })
        .collect()
}

/// A query for `name` of type `qtype`, class `class`, recursion desired.
pub fn query(name: &str, qtype: u16, class: u16) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    let mut question = hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(name).unwrap(),
        RecordType::from(qtype),
    );
    question.set_query_class(hickory_proto::rr::DNSClass::from(class));
    message.add_query(question);
    message
}

/// The A and AAAA addresses in a message's answer section.
pub fn addresses(message: &Message) -> Vec<IpAddr> {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}
