//! The few Solidity ABI calls the cross-check makes to `RelayRegistry.sol`,
//! encoded and decoded by hand (the client links no chain library): every
//! argument and result is a static type, one 32-byte word each (Solidity
//! ABI specification, "Formal Specification of the Encoding").

use sha3::Digest as _;

/// keccak-256, the EVM's hash.
pub fn keccak256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = sha3::Keccak256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// A function selector: the first 4 bytes of keccak-256 of the signature.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(&[signature.as_bytes()]);
    [hash[0], hash[1], hash[2], hash[3]]
}

/// `operators(address)`: the public getter of the operator mapping.
pub const OPERATORS: &str = "operators(address)";
/// `isCovered(address)`: whether the stake covers all the operator's relays.
pub const IS_COVERED: &str = "isCovered(address)";
/// `relays(bytes32)`: the public getter of the relay mapping.
pub const RELAYS: &str = "relays(bytes32)";
/// `coverFor(uint256)`: wei needed to cover that many Mbit/s; `coverFor(1)`
/// is `stakePerMbps`, which `covered_mbps` is derived from.
pub const COVER_FOR: &str = "coverFor(uint256)";

/// An address as an ABI word (left-padded with zeros).
fn address_word(address: &[u8; 20]) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(address);
    word
}

/// Call data: the selector of `signature`, then one word.
pub(crate) fn call_data(signature: &str, argument: [u8; 32]) -> Vec<u8> {
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&selector(signature));
    data.extend_from_slice(&argument);
    data
}

/// Call data of a function taking one address.
pub(crate) fn address_call(signature: &str, address: &[u8; 20]) -> Vec<u8> {
    call_data(signature, address_word(address))
}

/// `uint256` argument `n`.
pub(crate) fn uint_word(n: u64) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[24..].copy_from_slice(&n.to_be_bytes());
    word
}

/// `relayId(operator, relayKey)` of the contract, computed locally:
/// `keccak256(abi.encode(operator, relayKey))`.
pub fn relay_id(operator: &[u8; 20], relay_key: &[u8; 32]) -> [u8; 32] {
    keccak256(&[&address_word(operator), relay_key])
}

/// Why a return value does not decode as the expected types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function} returned {len} bytes, not {expected} words of its types")]
pub struct AbiError {
    /// The function called.
    pub function: &'static str,
    /// The returned length.
    pub len: usize,
    /// The words expected.
    pub expected: usize,
}

/// The `i`th word of `data`.
fn word(data: &[u8], i: usize) -> Option<&[u8; 32]> {
    data.get(i * 32..(i + 1) * 32)?.try_into().ok()
}

/// An unsigned integer word that must fit in `N` bytes (the rest zero).
fn uint<const N: usize>(word: &[u8; 32]) -> Option<[u8; N]> {
    let (high, low) = word.split_at(32 - N);
    if high.iter().any(|b| *b != 0) {
        return None;
    }
    low.try_into().ok()
}

fn decode<T>(
    function: &'static str,
    data: &[u8],
    words: usize,
    read: impl FnOnce(&[u8]) -> Option<T>,
) -> Result<T, AbiError> {
    let error = AbiError {
        function,
        len: data.len(),
        expected: words,
    };
    if data.len() != words * 32 {
        return Err(error);
    }
    read(data).ok_or(error)
}

/// What `operators(address)` returns (`struct Operator` of the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OperatorRecord {
    /// `operatorKey`: the Ed25519 operator key's bytes.
    pub(crate) operator_key: [u8; 32],
    /// `stake` in wei; `None` beyond `u128` (no directory can state it).
    pub(crate) stake_wei: Option<u128>,
}

/// Decodes `(bytes32 operatorKey, bytes32 profileHash, uint256 stake,
/// uint64 advertisedMbps, uint32 relayCount)`.
pub(crate) fn decode_operator(data: &[u8]) -> Result<OperatorRecord, AbiError> {
    decode(OPERATORS, data, 5, |data| {
        // Checked to be ABI words of their types, though unused.
        uint::<8>(word(data, 3)?)?;
        uint::<4>(word(data, 4)?)?;
        Some(OperatorRecord {
            operator_key: *word(data, 0)?,
            stake_wei: uint::<16>(word(data, 2)?).map(u128::from_be_bytes),
        })
    })
}

/// What `relays(bytes32)` returns (`struct Relay` of the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RelayRecord {
    /// `role`: 1 ingress, 2 egress, 0 not registered.
    pub(crate) role: u8,
    /// `bandwidthMbps`.
    pub(crate) bandwidth_mbps: u32,
    /// `descriptorHash`: `RelayDescriptor::content_hash()`.
    pub(crate) descriptor_hash: [u8; 32],
}

/// Decodes `(uint8 role, uint32 bandwidthMbps, bytes32 descriptorHash)`.
pub(crate) fn decode_relay(data: &[u8]) -> Result<RelayRecord, AbiError> {
    decode(RELAYS, data, 3, |data| {
        Some(RelayRecord {
            role: u8::from_be_bytes(uint::<1>(word(data, 0)?)?),
            bandwidth_mbps: u32::from_be_bytes(uint::<4>(word(data, 1)?)?),
            descriptor_hash: *word(data, 2)?,
        })
    })
}

/// Decodes a `bool`.
pub(crate) fn decode_bool(function: &'static str, data: &[u8]) -> Result<bool, AbiError> {
    decode(function, data, 1, |data| match uint::<1>(word(data, 0)?)? {
        [0] => Some(false),
        [1] => Some(true),
        _ => None,
    })
}

/// Decodes a `uint256`; `None` beyond `u128`.
pub(crate) fn decode_u128(function: &'static str, data: &[u8]) -> Result<Option<u128>, AbiError> {
    decode(function, data, 1, |data| {
        Some(uint::<16>(word(data, 0)?).map(u128::from_be_bytes))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The selectors solc 0.8.30 gives (`evm.methodIdentifiers` of
    /// `contracts/out/RelayRegistry.json`'s compilation; see
    /// `selectors_match_the_committed_abi` in `tests/chain_check.rs`).
    #[test]
    fn selectors_are_keccak_of_the_signature() {
        // The well-known ERC-20 selector checks the hash itself.
        assert_eq!(
            selector("transfer(address,uint256)"),
            [0xa9, 0x05, 0x9c, 0xbb]
        );
        assert_eq!(
            keccak256(&[b""]),
            *b"\xc5\xd2\x46\x01\x86\xf7\x23\x3c\x92\x7e\x7d\xb2\xdc\xc7\x03\xc0\xe5\x00\xb6\x53\xca\x82\x27\x3b\x7b\xfa\xd8\x04\x5d\x85\xa4\x70"
        );
    }

    #[test]
    fn calls_are_a_selector_and_one_word() {
        let data = address_call(OPERATORS, &[0x11; 20]);
        assert_eq!(data.len(), 36);
        assert_eq!(data[..4], selector(OPERATORS));
        assert_eq!(data[4..16], [0; 12]);
        assert_eq!(data[16..], [0x11; 20]);
        assert_eq!(call_data(COVER_FOR, uint_word(1))[35], 1);
    }

    fn words(words: &[[u8; 32]]) -> Vec<u8> {
        words.concat()
    }

    #[test]
    fn operator_records_decode_and_refuse_bad_lengths_and_overflows() {
        let mut stake = [0u8; 32];
        stake[31] = 7;
        let data = words(&[[9; 32], [8; 32], stake, uint_word(5), uint_word(2)]);
        assert_eq!(
            decode_operator(&data).unwrap(),
            OperatorRecord {
                operator_key: [9; 32],
                stake_wei: Some(7)
            }
        );
        // A stake beyond u128 decodes, but as no stake a directory states.
        let mut huge = stake;
        huge[0] = 1;
        let data = words(&[[9; 32], [8; 32], huge, uint_word(5), uint_word(2)]);
        assert_eq!(decode_operator(&data).unwrap().stake_wei, None);
        assert!(decode_operator(&data[..128]).is_err());
        assert!(decode_operator(&[data.clone(), vec![0]].concat()).is_err());
        // A uint64 field with high bytes set is not an ABI uint64.
        let data = words(&[[9; 32], [8; 32], stake, [1; 32], uint_word(2)]);
        assert!(decode_operator(&data).is_err());
    }

    #[test]
    fn relay_records_and_bools_decode() {
        let data = words(&[uint_word(2), uint_word(100), [3; 32]]);
        assert_eq!(
            decode_relay(&data).unwrap(),
            RelayRecord {
                role: 2,
                bandwidth_mbps: 100,
                descriptor_hash: [3; 32]
            }
        );
        assert!(decode_relay(&words(&[uint_word(256), uint_word(1), [3; 32]])).is_err());
        assert!(decode_relay(&words(&[uint_word(1), uint_word(1 << 32), [3; 32]])).is_err());
        assert!(decode_bool(IS_COVERED, &uint_word(1)).unwrap());
        assert!(!decode_bool(IS_COVERED, &uint_word(0)).unwrap());
        assert!(decode_bool(IS_COVERED, &uint_word(2)).is_err());
        assert_eq!(decode_u128(COVER_FOR, &uint_word(10)).unwrap(), Some(10));
    }

    #[test]
    fn relay_id_hashes_the_padded_account_and_key() {
        let mut input = [0u8; 64];
        input[12..32].copy_from_slice(&[0xaa; 20]);
        input[32..].copy_from_slice(&[0xbb; 32]);
        assert_eq!(relay_id(&[0xaa; 20], &[0xbb; 32]), keccak256(&[&input]));
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode_operator(&data);
            let _ = decode_relay(&data);
            let _ = decode_bool(IS_COVERED, &data);
            let _ = decode_u128(COVER_FOR, &data);
        }
    }
}
