//! The client's JSON-RPC answer reader (`openrelay_client::chain_check::
//! jsonrpc::batch`): whatever a node (or anything on its address) answers
//! (HTTP/1.1 head, Content-Length or chunked body, a JSON-RPC batch), the
//! client gets results or a typed error, never a panic or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_client::chain_check::jsonrpc::{Call, RpcUrl, batch};

fuzz_target!(|data: &[u8]| {
    let Some((&n, response)) = data.split_first() else {
        return;
    };
    let calls: Vec<Call> = (0..usize::from(n % 8) + 1)
        .map(|_| Call {
            method: "eth_chainId",
            params: serde_json::Value::Array(Vec::new()),
        })
        .collect();
    let Ok(url) = "http://127.0.0.1:8545/".parse::<RpcUrl>() else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    runtime.block_on(async {
        let mut stream = tokio::io::join(response, tokio::io::sink());
        let _ = batch(&mut stream, &url, &calls).await;
    });
});
