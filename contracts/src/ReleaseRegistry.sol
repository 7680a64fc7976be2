// SPDX-License-Identifier: Apache-2.0 OR MIT
pragma solidity 0.8.30;

import {RelayRegistry} from "./RelayRegistry.sol";

/// @title openrelay's release votes: which software relays may run.
/// @notice A release (its `releaseId`, the SHA-256 of its signed in-toto
/// statement, the SHA-256 of its binary and the TEE launch measurements it
/// yields) is proposed with a bond; the validators of `RelayRegistry`'s
/// active set vote approve or reject with their quorum weight, commit then
/// reveal, within phases of fixed length; anyone settles the ballot after
/// the reveal phase. Approved when approving weight reaches `quorumBps` of
/// the set's weight (more than 2/3), rejected when rejecting weight does,
/// undecided otherwise. The minority and the validators that committed
/// without revealing lose `voteSlashBps` of their stake to the majority.
/// An approved release is revoked through the same vote; a revoked
/// release stays listed as such forever, a rejected one until other
/// content is proposed under its id.
///
/// Deployed by `RelayRegistry`'s constructor, which fixes this contract as
/// the only caller of its `settleReleaseVote` hook (the validators' stake
/// lives there). docs/chain.md, "Release votes", gives every parameter's
/// reasoning.
contract ReleaseRegistry {
    /// The release-vote parameters (docs/chain.md, "Release votes").
    struct Params {
        /// Wei a proposal (or a revocation) locks: returned unless the
        /// ballot rejects it, then paid to the majority.
        uint256 proposalBond;
        /// Seconds from the proposal during which validators commit.
        uint64 commitSeconds;
        /// Seconds after the commit phase during which they reveal.
        uint64 revealSeconds;
        /// Share of its stake (basis points) a validator loses for voting
        /// against the outcome or committing without revealing.
        uint16 voteSlashBps;
    }

    /// A release's standing. `Undecided`: its last ballot settled without a
    /// quorum either way; it may be proposed again.
    enum Status {
        Unknown,
        Proposed,
        Approved,
        Rejected,
        Revoked,
        Undecided
    }

    enum Kind {
        None,
        Release,
        Revocation
    }

    enum Outcome {
        Open,
        Approved,
        Rejected,
        Undecided
    }

    struct Release {
        bytes32 binarySha256;
        Status status;
        /// The ballot open on it (a proposal or a revocation), else 0.
        uint64 openBallot;
        /// Launch measurements: `count` × (platform u8 ‖ 48-byte value).
        bytes measurements;
    }

    struct Ballot {
        bytes32 releaseId;
        Kind kind;
        Outcome outcome;
        address proposer;
        uint64 commitEndsAt;
        uint64 revealEndsAt;
        uint256 bond;
        uint256 approveWeight;
        uint256 rejectWeight;
        address[] voters;
    }

    uint16 private constant BPS = 10000;
    /// Most launch measurements a release lists (platforms × VM shapes).
    uint256 public constant MAX_MEASUREMENTS = 16;
    /// One measurement: platform (1 byte) and value (48 bytes).
    uint256 public constant MEASUREMENT_BYTES = 49;
    /// Domain separation of vote commitments.
    bytes32 public constant VOTE_DOMAIN = "openrelay release vote v1";
    uint8 private constant VOTE_APPROVE = 1;
    uint8 private constant VOTE_REJECT = 2;

    /// The registry holding the validators' stake and weights.
    RelayRegistry public immutable registry;
    uint16 public immutable quorumBps;
    Params private params_;

    mapping(bytes32 => Release) private releases_;
    bytes32[] private releaseIds_;
    /// Ballots by id, from 1.
    mapping(uint64 => Ballot) private ballots_;
    uint64 public ballotCount;
    mapping(uint64 => mapping(address => bytes32)) public voteCommitments;
    /// 0: not revealed, 1: approve, 2: reject.
    mapping(uint64 => mapping(address => uint8)) public revealedVotes;

    event ReleaseProposed(
        bytes32 indexed releaseId,
        uint64 indexed ballot,
        bytes32 binarySha256,
        bytes measurements,
        address proposer,
        uint64 commitEndsAt,
        uint64 revealEndsAt
    );
    event RevocationProposed(
        bytes32 indexed releaseId, uint64 indexed ballot, address proposer, uint64 commitEndsAt, uint64 revealEndsAt
    );
    event VoteCommitted(uint64 indexed ballot, address indexed validator, bytes32 commitment);
    event VoteRevealed(uint64 indexed ballot, address indexed validator, bool approve, uint256 weight);
    event BallotSettled(
        uint64 indexed ballot,
        bytes32 indexed releaseId,
        Kind kind,
        Outcome outcome,
        uint256 approveWeight,
        uint256 rejectWeight,
        uint256 totalWeight
    );
    event ReleaseStatusChanged(bytes32 indexed releaseId, Status status);

    error BadParams();
    error OnlyRegistry();
    /// The bond sent is not `required`.
    error WrongBond(uint256 required, uint256 sent);
    error ZeroRelease();
    /// The release id is known (status `status`): ids are never reused.
    error ReleaseKnown(bytes32 releaseId, Status status);
    /// Measurements must be 1 to `MAX_MEASUREMENTS` entries of 49 bytes.
    error BadMeasurements(uint256 length);
    /// Only an approved release without an open ballot is revoked.
    error NotRevocable(bytes32 releaseId, Status status);
    error UnknownBallot(uint64 ballot);
    error NotValidator();
    /// Commitments to `ballot` are accepted until `closesAt`; it is `now`.
    error CommitPhaseOver(uint64 ballot, uint64 closesAt, uint64 now);
    /// Reveals of `ballot` are accepted from `opensAt` until before `closesAt`.
    error NotRevealPhase(uint64 ballot, uint64 opensAt, uint64 closesAt, uint64 now);
    error ZeroCommitment();
    error AlreadyCommitted(uint64 ballot);
    error NotCommitted(uint64 ballot);
    error AlreadyRevealed(uint64 ballot);
    /// The reveal hashes to `revealHash`, not the `commitment` made.
    error CommitmentMismatch(uint64 ballot, bytes32 commitment, bytes32 revealHash);
    /// `ballot` settles from `opensAt` (its reveal phase's end).
    error TooEarly(uint64 ballot, uint64 opensAt, uint64 now);
    error AlreadySettled(uint64 ballot);

    /// Deployed by `RelayRegistry`'s constructor (the caller), with its
    /// quorum.
    constructor(Params memory p, uint16 quorum) {
        if (p.commitSeconds == 0 || p.revealSeconds == 0 || p.voteSlashBps > BPS || quorum > BPS) {
            revert BadParams();
        }
        registry = RelayRegistry(msg.sender);
        quorumBps = quorum;
        params_ = p;
    }

    function params() external view returns (Params memory) {
        return params_;
    }

    // ---- proposals ----

    /// Proposes release `releaseId` (the SHA-256 of its signed in-toto
    /// statement) whose binary hashes to `binarySha256` and whose TEE
    /// launch measurements are `measurements` (1 to 16 entries of platform
    /// byte ‖ 48-byte value). The value sent is the bond. A known id is
    /// refused, except one whose last ballot was undecided, or one
    /// rejected with other content (a binary hash or measurements).
    function propose(bytes32 releaseId, bytes32 binarySha256, bytes calldata measurements)
        external
        payable
        returns (uint64 ballot)
    {
        if (releaseId == bytes32(0) || binarySha256 == bytes32(0)) revert ZeroRelease();
        Release storage r = releases_[releaseId];
        // A rejection is final for what was rejected, not for the id:
        // otherwise anyone could propose a published release id first with
        // a wrong binary or measurements, have it rejected, and so bar the
        // real release for good. Different content under a rejected id is
        // a new vote (a new bond); the same content is refused.
        bool retry = r.status == Status.Undecided
            || (r.status == Status.Rejected
                && (r.binarySha256 != binarySha256 || keccak256(r.measurements) != keccak256(measurements)));
        if (r.status != Status.Unknown && !retry) revert ReleaseKnown(releaseId, r.status);
        uint256 n = measurements.length;
        if (n == 0 || n % MEASUREMENT_BYTES != 0 || n / MEASUREMENT_BYTES > MAX_MEASUREMENTS) {
            revert BadMeasurements(n);
        }
        if (r.status == Status.Unknown) releaseIds_.push(releaseId);
        ballot = _open(releaseId, Kind.Release);
        r.binarySha256 = binarySha256;
        r.measurements = measurements;
        r.status = Status.Proposed;
        r.openBallot = ballot;
        Ballot storage b = ballots_[ballot];
        emit ReleaseProposed(releaseId, ballot, binarySha256, measurements, msg.sender, b.commitEndsAt, b.revealEndsAt);
        emit ReleaseStatusChanged(releaseId, Status.Proposed);
    }

    /// Proposes revoking approved release `releaseId`; the value sent is
    /// the bond. If the ballot approves, the release is revoked for good.
    function proposeRevocation(bytes32 releaseId) external payable returns (uint64 ballot) {
        Release storage r = releases_[releaseId];
        if (r.status != Status.Approved || r.openBallot != 0) revert NotRevocable(releaseId, r.status);
        ballot = _open(releaseId, Kind.Revocation);
        r.openBallot = ballot;
        Ballot storage b = ballots_[ballot];
        emit RevocationProposed(releaseId, ballot, msg.sender, b.commitEndsAt, b.revealEndsAt);
    }

    // ---- votes ----

    /// The commitment `voter` makes to voting `approve` on `ballot` with
    /// the secret `salt`. It names the voter, so another validator cannot
    /// copy a commitment and reveal it once the original is revealed.
    function voteCommitment(uint64 ballot, address voter, bool approve, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(VOTE_DOMAIN, ballot, voter, approve, salt));
    }

    /// The caller, a member of the current set, commits to its vote on
    /// `ballot` during its commit phase; once.
    function commitVote(uint64 ballot, bytes32 commitment) external {
        Ballot storage b = _ballot(ballot);
        (,,,,,, bool active,) = registry.validators(msg.sender);
        if (!active) revert NotValidator();
        if (block.timestamp >= b.commitEndsAt) {
            revert CommitPhaseOver(ballot, b.commitEndsAt, uint64(block.timestamp));
        }
        if (commitment == bytes32(0)) revert ZeroCommitment();
        if (voteCommitments[ballot][msg.sender] != bytes32(0)) revert AlreadyCommitted(ballot);
        voteCommitments[ballot][msg.sender] = commitment;
        b.voters.push(msg.sender);
        emit VoteCommitted(ballot, msg.sender, commitment);
    }

    /// The caller reveals the vote it committed to, during the reveal
    /// phase (after every commitment is in, so nobody copies a reveal).
    function revealVote(uint64 ballot, bool approve, bytes32 salt) external {
        Ballot storage b = _ballot(ballot);
        if (block.timestamp < b.commitEndsAt || block.timestamp >= b.revealEndsAt) {
            revert NotRevealPhase(ballot, b.commitEndsAt, b.revealEndsAt, uint64(block.timestamp));
        }
        bytes32 commitment = voteCommitments[ballot][msg.sender];
        if (commitment == bytes32(0)) revert NotCommitted(ballot);
        if (revealedVotes[ballot][msg.sender] != 0) revert AlreadyRevealed(ballot);
        bytes32 revealHash = voteCommitment(ballot, msg.sender, approve, salt);
        if (revealHash != commitment) revert CommitmentMismatch(ballot, commitment, revealHash);
        revealedVotes[ballot][msg.sender] = approve ? VOTE_APPROVE : VOTE_REJECT;
        (,, uint256 weight,,,,,) = registry.validators(msg.sender);
        emit VoteRevealed(ballot, msg.sender, approve, weight);
    }

    /// Settles `ballot` once its reveal phase is over; anyone may. Votes
    /// count with the weight of their validator in the set at settlement
    /// (a validator that left it counts for nothing, and is neither paid
    /// nor slashed). The release's status follows the outcome; the
    /// minority and the committed-but-silent lose `voteSlashBps` of their
    /// stake, paid with a rejected proposal's bond to the majority by
    /// weight (`RelayRegistry.rewards`); an undecided ballot pays nobody
    /// (the silent's stake is burnt) and returns the bond.
    function settle(uint64 ballot) external {
        Ballot storage b = _ballot(ballot);
        if (b.outcome != Outcome.Open) revert AlreadySettled(ballot);
        if (block.timestamp < b.revealEndsAt) revert TooEarly(ballot, b.revealEndsAt, uint64(block.timestamp));
        uint256 n = b.voters.length;
        uint8[] memory votes = new uint8[](n);
        uint256 approveWeight;
        uint256 rejectWeight;
        for (uint256 i = 0; i < n; i++) {
            (,, uint256 weight,,,, bool active,) = registry.validators(b.voters[i]);
            if (!active) continue;
            uint8 vote = revealedVotes[ballot][b.voters[i]];
            // 3: committed and silent (or a member no more: skipped above).
            votes[i] = vote == 0 ? 3 : vote;
            if (vote == VOTE_APPROVE) approveWeight += weight;
            if (vote == VOTE_REJECT) rejectWeight += weight;
        }
        uint256 total = registry.activeWeight();
        Outcome outcome = Outcome.Undecided;
        if (approveWeight * BPS >= total * quorumBps) outcome = Outcome.Approved;
        else if (rejectWeight * BPS >= total * quorumBps) outcome = Outcome.Rejected;
        b.outcome = outcome;
        b.approveWeight = approveWeight;
        b.rejectWeight = rejectWeight;

        uint8 winning = outcome == Outcome.Approved ? VOTE_APPROVE : outcome == Outcome.Rejected ? VOTE_REJECT : 0;
        (address[] memory losers, address[] memory winners) = _sides(b.voters, votes, winning);
        Release storage r = releases_[b.releaseId];
        r.openBallot = 0;
        Status status = r.status;
        if (b.kind == Kind.Release) {
            status = outcome == Outcome.Approved
                ? Status.Approved
                : outcome == Outcome.Rejected ? Status.Rejected : Status.Undecided;
        } else if (outcome == Outcome.Approved) {
            status = Status.Revoked;
        }
        emit BallotSettled(ballot, b.releaseId, b.kind, outcome, approveWeight, rejectWeight, total);
        if (status != r.status) {
            r.status = status;
            emit ReleaseStatusChanged(b.releaseId, status);
        }
        // The bond goes back unless the ballot rejected the proposal.
        uint256 refund = outcome == Outcome.Rejected ? 0 : b.bond;
        registry.settleReleaseVote{value: b.bond}(
            losers, params_.voteSlashBps, winners, b.proposer, refund, keccak256(abi.encode(VOTE_DOMAIN, ballot))
        );
    }

    // ---- views ----

    function releaseCount() external view returns (uint256) {
        return releaseIds_.length;
    }

    function releaseIdAt(uint256 index) external view returns (bytes32) {
        return releaseIds_[index];
    }

    /// Release `releaseId` (status `Unknown` if never proposed).
    function release(bytes32 releaseId) external view returns (Release memory) {
        return releases_[releaseId];
    }

    /// Whether clients may run `releaseId`: approved and not revoked.
    function isApproved(bytes32 releaseId) external view returns (bool) {
        return releases_[releaseId].status == Status.Approved;
    }

    function ballotInfo(uint64 id) external view returns (Ballot memory) {
        return ballots_[id];
    }

    // ---- internals ----

    function _open(bytes32 releaseId, Kind kind) private returns (uint64 id) {
        if (msg.value != params_.proposalBond) revert WrongBond(params_.proposalBond, msg.value);
        id = ++ballotCount;
        Ballot storage b = ballots_[id];
        b.releaseId = releaseId;
        b.kind = kind;
        b.proposer = msg.sender;
        b.bond = msg.value;
        b.commitEndsAt = uint64(block.timestamp) + params_.commitSeconds;
        b.revealEndsAt = b.commitEndsAt + params_.revealSeconds;
    }

    function _ballot(uint64 id) private view returns (Ballot storage b) {
        b = ballots_[id];
        if (b.kind == Kind.None) revert UnknownBallot(id);
    }

    /// Splits the counted voters into losers (against `winning`, or
    /// silent) and winners (with it); with no winning side only the silent
    /// lose.
    function _sides(address[] storage voters, uint8[] memory votes, uint8 winning)
        private
        view
        returns (address[] memory losers, address[] memory winners)
    {
        uint256 n = voters.length;
        losers = new address[](n);
        winners = new address[](n);
        uint256 lost;
        uint256 won;
        for (uint256 i = 0; i < n; i++) {
            uint8 vote = votes[i];
            if (vote == 0) continue;
            if (vote == 3 || (winning != 0 && vote != winning)) losers[lost++] = voters[i];
            else if (vote == winning) winners[won++] = voters[i];
        }
        assembly ("memory-safe") {
            mstore(losers, lost)
            mstore(winners, won)
        }
    }
}
