//! Turning a requested target into addresses the policy permits. The port is
//! judged before any lookup, and every resolved address after it, so a name
//! pointing at loopback or a private network is refused like the address.

use std::net::SocketAddr;
use std::time::Duration;

use openrelay_policy::DestinationPolicy;
use openrelay_wire::target::{Host, Target};

use crate::connect::FlowError;

/// Addresses to try for `target`, in resolver order, all permitted by `policy`.
pub(crate) async fn permitted_addresses(
    target: &Target,
    policy: &DestinationPolicy,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, FlowError> {
    policy.check_port(target.port).map_err(FlowError::Refused)?;
    let resolved: Vec<SocketAddr> = match &target.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        Host::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), target.port));
            match tokio::time::timeout(timeout, lookup).await {
                Err(_) => return Err(FlowError::DnsTimeout),
                Ok(Err(_)) => return Err(FlowError::DnsFailed),
                Ok(Ok(addrs)) => addrs.collect(),
            }
        }
    };
    if resolved.is_empty() {
        return Err(FlowError::DnsFailed);
    }
    let permitted = policy.filter(resolved).map_err(FlowError::Refused)?;
    if permitted.is_empty() {
        return Err(FlowError::DnsFailed);
    }
    Ok(permitted)
}
