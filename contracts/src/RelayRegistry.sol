// SPDX-License-Identifier: Apache-2.0 OR MIT
pragma solidity 0.8.30;

import {ReleaseRegistry} from "./ReleaseRegistry.sol";

/// @title openrelay's relay registry: operators, relays, stake and validators.
/// @notice The source of truth the registry service follows (issue 13).
/// Operators stake in proportion to the bandwidth their relays advertise;
/// validators stake to join a set whose changes need at least 2/3 of the
/// current set's weight; stake leaves only after an unbonding delay, during
/// which it can still be slashed, and only a 2/3 quorum of validators can
/// slash. Relays' descriptors stay off-chain: the chain holds a commitment
/// (`descriptorHash`) to each relay's descriptor content (everything but
/// its validity window), so a relay republishes its descriptor without a
/// transaction and changes it only with one.
///
/// Keys are Ed25519 public keys (32 bytes) checked off-chain: the chain
/// cannot verify Ed25519 cheaply, so a relay is keyed by its operator's
/// account *and* its key (nobody can squat another operator's relay key),
/// and a directory lists a relay only if its descriptor, signed by the
/// relay key and the operator key, names the operator key registered here.
///
/// Every parameter is in `Params`, fixed at deployment; docs/chain.md gives
/// each one's reasoning and the attack it prices.
contract RelayRegistry {
    /// Every parameter of the registry (docs/chain.md, "Parameters").
    struct Params {
        /// Wei an operator stakes per Mbit/s its relays advertise.
        uint256 stakePerMbps;
        /// Least stake a validator joins with.
        uint256 minValidatorStake;
        /// Seconds between `unstake` (or leaving the validator set) and
        /// `withdraw`: how long misbehaviour can still be slashed.
        uint64 unbondingDelay;
        /// Seconds a join request waits before a set change may include it.
        uint64 validatorJoinDelay;
        /// Seconds a leave request waits before a set change may apply it.
        uint64 validatorLeaveDelay;
        /// Share of the current set's weight (basis points) a set change or
        /// a slash needs; at least 6667 (more than 2/3).
        uint16 quorumBps;
        /// Share of slashed stake burnt (basis points).
        uint16 slashBurnBps;
        /// Share of slashed stake paid to the validators of the quorum
        /// (basis points); burn + reward = 10000.
        uint16 slashRewardBps;
        /// Most relays one operator account may register.
        uint32 maxRelaysPerOperator;
        /// Most validators in the set.
        uint32 maxValidators;
        /// Length of a measurement epoch, seconds: validators measure relays
        /// and commit to their report during an epoch.
        uint64 measureEpochSeconds;
        /// Seconds at the start of epoch `e + 1` during which reports of `e`
        /// are revealed; more than zero and less than an epoch.
        uint64 revealWindowSeconds;
    }

    struct Operator {
        bytes32 operatorKey;
        bytes32 profileHash;
        uint256 stake;
        uint64 advertisedMbps;
        uint32 relayCount;
    }

    struct Relay {
        uint8 role;
        uint32 bandwidthMbps;
        bytes32 descriptorHash;
    }

    struct Validator {
        bytes32 validatorKey;
        uint256 stake;
        /// Quorum weight: the stake when the current set was formed.
        uint256 weight;
        uint64 joinReadyAt;
        uint64 leaveReadyAt;
        bool pending;
        bool active;
        bool leaving;
    }

    struct Unbonding {
        uint256 amount;
        uint64 readyAt;
    }

    struct SlashVote {
        uint256 approvedWeight;
        bool executed;
        address[] approvers;
    }

    uint8 public constant ROLE_INGRESS = 1;
    uint8 public constant ROLE_EGRESS = 2;
    uint8 public constant TARGET_OPERATOR = 1;
    uint8 public constant TARGET_VALIDATOR = 2;
    uint16 private constant BPS = 10000;
    /// The least `quorumBps`: 6667 / 10000 > 2/3.
    uint16 public constant MIN_QUORUM_BPS = 6667;
    /// Domain separation of report commitments: `openrelay-measure`'s
    /// `COMMITMENT_DOMAIN` (crates/measure/src/report.rs).
    bytes public constant COMMITMENT_DOMAIN = "openrelay measure commitment v1\x00";
    /// The shortest reveal: version, epoch, validator key, count (0) and
    /// salt (`openrelay-measure`'s canonical encoding).
    uint256 public constant MIN_REVEAL_BYTES = 1 + 8 + 32 + 4 + 32;
    /// The longest reveal: 10,000 entries of at most 53 bytes, a report on
    /// every relay of the 10,000-relay network the design is sized for.
    /// Every byte is calldata and event data that every registry and
    /// validator downloads, and this is about the most one transaction
    /// carries (17.6 M gas, above Ethereum's 2^24 per-transaction cap):
    /// larger networks reveal off the chain (docs/chain.md, "Measurement
    /// epochs").
    uint256 public constant MAX_REVEAL_BYTES = MIN_REVEAL_BYTES + 10000 * 53;

    Params private params_;

    mapping(address => Operator) public operators;
    /// Relays by `relayId(operator account, relay key)`.
    mapping(bytes32 => Relay) public relays;
    mapping(address => Validator) public validators;
    mapping(address => Unbonding) public unbonding;
    /// Rewards an account may withdraw at once.
    mapping(address => uint256) public rewards;
    /// Wei burnt by slashing (held by this contract forever).
    uint256 public totalBurnt;

    /// The current validator set, its epoch and its total weight.
    address[] private activeSet_;
    uint64 public validatorEpoch;
    uint256 public activeWeight;

    /// Set-change approvals: proposal id => validator => approved, and the
    /// weight approving it.
    mapping(bytes32 => mapping(address => bool)) public setChangeApproved;
    mapping(bytes32 => uint256) public setChangeWeight;
    mapping(bytes32 => SlashVote) private slashVotes_;
    mapping(bytes32 => mapping(address => bool)) public slashApproved;

    /// When measurement epoch 0 started: the deployment block's timestamp.
    uint64 public immutable measureGenesis;
    /// The release votes (docs/chain.md, "Release votes"), deployed with
    /// this contract: the only caller of `settleReleaseVote`.
    ReleaseRegistry public immutable releaseRegistry;
    /// Report commitments by measurement epoch and validator account.
    mapping(uint64 => mapping(address => bytes32)) public reportCommitments;
    /// Whether that commitment has been revealed.
    mapping(uint64 => mapping(address => bool)) public reportRevealed;

    event OperatorRegistered(address indexed operator, bytes32 operatorKey, bytes32 profileHash);
    event ProfileUpdated(address indexed operator, bytes32 profileHash);
    event Staked(address indexed account, uint256 amount, uint256 stake);
    event UnstakeRequested(address indexed account, uint256 amount, uint256 stake, uint64 readyAt);
    event Withdrawn(address indexed account, uint256 amount);
    event RelayRegistered(
        address indexed operator, bytes32 indexed relayKey, uint8 role, uint32 bandwidthMbps, bytes32 descriptorHash
    );
    event RelayUpdated(address indexed operator, bytes32 indexed relayKey, uint32 bandwidthMbps, bytes32 descriptorHash);
    event RelayRemoved(address indexed operator, bytes32 indexed relayKey);
    event ValidatorJoinRequested(address indexed validator, bytes32 validatorKey, uint256 stake, uint64 readyAt);
    event ValidatorLeaveRequested(address indexed validator, uint64 readyAt);
    event JoinWithdrawn(address indexed validator, uint256 stake);
    event SetChangeApproved(uint64 indexed epoch, bytes32 indexed proposal, address validator, uint256 weight);
    event ValidatorSetChanged(uint64 indexed epoch, address[] members, bytes32[] keys, uint256[] weights);
    event SlashApproved(bytes32 indexed slash, address validator, uint256 weight);
    /// `stakeLeft` is the target's bonded stake after the slash (not
    /// counting what is unbonding).
    event Slashed(
        uint8 targetKind,
        address indexed target,
        uint256 amount,
        uint256 burnt,
        uint256 rewarded,
        uint256 stakeLeft,
        bytes32 evidence
    );
    event ReportCommitted(uint64 indexed epoch, address indexed validator, bytes32 commitment);
    /// `reveal` is the canonical report (`openrelay-measure`'s `Reveal`).
    event ReportRevealed(uint64 indexed epoch, address indexed validator, bytes reveal);

    error BadParams();
    error ZeroKey();
    error AlreadyRegistered();
    error NotOperator();
    error BadRole(uint8 role);
    error ZeroBandwidth();
    error TooManyRelays(uint32 max);
    error UnknownRelay();
    /// Stake must cover `required` wei; the account has `stake`.
    error InsufficientStake(uint256 required, uint256 stake);
    error NothingToWithdraw();
    error NotReady(uint64 readyAt);
    error TransferFailed();
    error NotValidator();
    error BelowMinimumStake(uint256 minimum);
    error AlreadyValidator();
    error NotPending();
    error WrongEpoch(uint64 current);
    error BadSetChange();
    error SetFull(uint32 max);
    error AlreadyApproved();
    error BadSlash();
    error SlashAlreadyExecuted(bytes32 slash);
    /// A commitment to measurement epoch `epoch` is accepted from `opensAt`
    /// until before `closesAt` (chain time); it is `now`.
    error CommitWindowClosed(uint64 epoch, uint64 opensAt, uint64 closesAt, uint64 now);
    /// The reveal of epoch `epoch` is accepted from `opensAt` until before
    /// `closesAt`; it is `now`.
    error RevealWindowClosed(uint64 epoch, uint64 opensAt, uint64 closesAt, uint64 now);
    error ZeroCommitment();
    error AlreadyCommitted(uint64 epoch);
    error NotCommitted(uint64 epoch);
    error AlreadyRevealed(uint64 epoch);
    /// `sha256(COMMITMENT_DOMAIN ‖ reveal)` is `revealHash`, not the
    /// `commitment` made.
    error CommitmentMismatch(uint64 epoch, bytes32 commitment, bytes32 revealHash);
    /// The reveal's own epoch field says `revealEpoch`.
    error RevealEpochMismatch(uint64 epoch, uint64 revealEpoch);
    /// The reveal names `revealKey`; the sender's validator key is
    /// `validatorKey`.
    error RevealKeyMismatch(bytes32 validatorKey, bytes32 revealKey);
    error RevealLength(uint256 length, uint256 minLength, uint256 maxLength);
    error NotReleaseRegistry();

    /// Deploys with `p` and the genesis validator set: `genesis[i]` with
    /// key `keys[i]` and stake `stakes[i]`, paid with this transaction, and
    /// the release votes with `releaseParams` (created here, so the hook's
    /// one authorised caller is fixed before anyone can call it).
    constructor(
        Params memory p,
        address[] memory genesis,
        bytes32[] memory keys,
        uint256[] memory stakes,
        ReleaseRegistry.Params memory releaseParams
    ) payable {
        if (
            p.quorumBps < MIN_QUORUM_BPS || p.quorumBps > BPS || uint256(p.slashBurnBps) + p.slashRewardBps != BPS
                || p.stakePerMbps == 0 || p.maxRelaysPerOperator == 0 || p.maxValidators == 0
                || genesis.length == 0 || genesis.length > p.maxValidators || genesis.length != keys.length
                || genesis.length != stakes.length || p.revealWindowSeconds == 0
                || p.revealWindowSeconds >= p.measureEpochSeconds
        ) revert BadParams();
        params_ = p;
        measureGenesis = uint64(block.timestamp);
        uint256 paid;
        for (uint256 i = 0; i < genesis.length; i++) {
            Validator storage v = validators[genesis[i]];
            if (keys[i] == bytes32(0)) revert ZeroKey();
            if (v.active) revert AlreadyValidator();
            if (stakes[i] < p.minValidatorStake || stakes[i] == 0) revert BelowMinimumStake(p.minValidatorStake);
            v.validatorKey = keys[i];
            v.stake = stakes[i];
            v.weight = stakes[i];
            v.active = true;
            activeSet_.push(genesis[i]);
            activeWeight += stakes[i];
            paid += stakes[i];
        }
        if (paid != msg.value) revert BadParams();
        releaseRegistry = new ReleaseRegistry(releaseParams, p.quorumBps);
        emit ValidatorSetChanged(0, genesis, keys, stakes);
    }

    function params() external view returns (Params memory) {
        return params_;
    }

    /// The id a relay is stored under: its operator's account and its key.
    function relayId(address operator, bytes32 relayKey) public pure returns (bytes32) {
        return keccak256(abi.encode(operator, relayKey));
    }

    /// Wei needed to cover `mbps` of advertised bandwidth.
    function coverFor(uint256 mbps) public view returns (uint256) {
        return mbps * params_.stakePerMbps;
    }

    /// Whether the operator's stake covers all its relays' bandwidth (a
    /// slash can leave it short: then none of its relays is listed).
    function isCovered(address operator) public view returns (bool) {
        Operator storage o = operators[operator];
        return o.stake >= coverFor(o.advertisedMbps);
    }

    function activeSet() external view returns (address[] memory) {
        return activeSet_;
    }

    // ---- operators and relays ----

    /// Registers the caller as an operator with Ed25519 key `operatorKey`
    /// and the commitment to its signed profile; the value sent is its
    /// stake. Several accounts may name one key: the chain cannot check
    /// Ed25519 possession, so uniqueness here would let anyone squat a
    /// published key first. The operator's signed profile names the one
    /// account whose relays count (docs/chain.md, "Operator keys").
    function registerOperator(bytes32 operatorKey, bytes32 profileHash) external payable {
        if (operatorKey == bytes32(0)) revert ZeroKey();
        Operator storage o = operators[msg.sender];
        if (o.operatorKey != bytes32(0)) revert AlreadyRegistered();
        o.operatorKey = operatorKey;
        o.profileHash = profileHash;
        emit OperatorRegistered(msg.sender, operatorKey, profileHash);
        if (msg.value > 0) {
            o.stake = msg.value;
            emit Staked(msg.sender, msg.value, o.stake);
        }
    }

    function updateProfile(bytes32 profileHash) external {
        Operator storage o = _operator(msg.sender);
        o.profileHash = profileHash;
        emit ProfileUpdated(msg.sender, profileHash);
    }

    /// Adds the value sent to the caller's operator stake.
    function stake() external payable {
        Operator storage o = _operator(msg.sender);
        o.stake += msg.value;
        emit Staked(msg.sender, msg.value, o.stake);
    }

    /// Starts unbonding `amount` of the caller's operator stake; refused if
    /// what stays would not cover its relays.
    function unstake(uint256 amount) external {
        Operator storage o = _operator(msg.sender);
        if (amount > o.stake) revert InsufficientStake(amount, o.stake);
        uint256 required = coverFor(o.advertisedMbps);
        if (o.stake - amount < required) revert InsufficientStake(required + amount, o.stake);
        o.stake -= amount;
        uint64 readyAt = _unbond(msg.sender, amount);
        emit UnstakeRequested(msg.sender, amount, o.stake, readyAt);
    }

    /// Registers relay `relayKey` under the caller: `role` 1 (ingress) or 2
    /// (egress), `bandwidthMbps` advertised, `descriptorHash` the commitment
    /// to its descriptor's content.
    function registerRelay(bytes32 relayKey, uint8 role, uint32 bandwidthMbps, bytes32 descriptorHash) external {
        Operator storage o = _operator(msg.sender);
        if (relayKey == bytes32(0)) revert ZeroKey();
        if (role != ROLE_INGRESS && role != ROLE_EGRESS) revert BadRole(role);
        if (bandwidthMbps == 0) revert ZeroBandwidth();
        Relay storage r = relays[relayId(msg.sender, relayKey)];
        if (r.role != 0) revert AlreadyRegistered();
        if (o.relayCount >= params_.maxRelaysPerOperator) revert TooManyRelays(params_.maxRelaysPerOperator);
        _requireCover(o, uint256(o.advertisedMbps) + bandwidthMbps);
        r.role = role;
        r.bandwidthMbps = bandwidthMbps;
        r.descriptorHash = descriptorHash;
        o.relayCount += 1;
        o.advertisedMbps += bandwidthMbps;
        emit RelayRegistered(msg.sender, relayKey, role, bandwidthMbps, descriptorHash);
    }

    /// Changes a relay's advertised bandwidth and descriptor commitment
    /// (more bandwidth needs the stake to cover it).
    function updateRelay(bytes32 relayKey, uint32 bandwidthMbps, bytes32 descriptorHash) external {
        Operator storage o = _operator(msg.sender);
        Relay storage r = relays[relayId(msg.sender, relayKey)];
        if (r.role == 0) revert UnknownRelay();
        if (bandwidthMbps == 0) revert ZeroBandwidth();
        uint256 total = uint256(o.advertisedMbps) - r.bandwidthMbps + bandwidthMbps;
        if (bandwidthMbps > r.bandwidthMbps) _requireCover(o, total);
        o.advertisedMbps = uint64(total);
        r.bandwidthMbps = bandwidthMbps;
        r.descriptorHash = descriptorHash;
        emit RelayUpdated(msg.sender, relayKey, bandwidthMbps, descriptorHash);
    }

    function removeRelay(bytes32 relayKey) external {
        Operator storage o = _operator(msg.sender);
        bytes32 id = relayId(msg.sender, relayKey);
        Relay storage r = relays[id];
        if (r.role == 0) revert UnknownRelay();
        o.advertisedMbps -= r.bandwidthMbps;
        o.relayCount -= 1;
        delete relays[id];
        emit RelayRemoved(msg.sender, relayKey);
    }

    // ---- withdrawals ----

    /// Pays the caller its unbonded stake (once its delay has passed) and
    /// its rewards.
    function withdraw() external {
        Unbonding storage u = unbonding[msg.sender];
        uint256 amount = rewards[msg.sender];
        rewards[msg.sender] = 0;
        if (u.amount > 0) {
            if (block.timestamp >= u.readyAt) {
                amount += u.amount;
                u.amount = 0;
            } else if (amount == 0) {
                revert NotReady(u.readyAt);
            }
        }
        if (amount == 0) revert NothingToWithdraw();
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---- validators ----

    /// Asks to join the validator set with Ed25519 key `validatorKey`; the
    /// value sent is the stake. A set change may include the caller after
    /// `validatorJoinDelay`.
    function requestJoin(bytes32 validatorKey) external payable {
        if (validatorKey == bytes32(0)) revert ZeroKey();
        Validator storage v = validators[msg.sender];
        if (v.active || v.pending) revert AlreadyValidator();
        if (!_meetsMinimum(msg.value)) revert BelowMinimumStake(params_.minValidatorStake);
        v.validatorKey = validatorKey;
        v.stake = msg.value;
        v.pending = true;
        v.joinReadyAt = uint64(block.timestamp) + params_.validatorJoinDelay;
        emit ValidatorJoinRequested(msg.sender, validatorKey, msg.value, v.joinReadyAt);
    }

    /// Takes back a join request no set change has applied (its stake
    /// unbonds like any other).
    function withdrawJoin() external {
        Validator storage v = validators[msg.sender];
        if (!v.pending) revert NotPending();
        uint256 amount = v.stake;
        delete validators[msg.sender];
        _unbond(msg.sender, amount);
        emit JoinWithdrawn(msg.sender, amount);
    }

    /// Asks to leave the set; a set change may remove the caller after
    /// `validatorLeaveDelay`.
    function requestLeave() external {
        Validator storage v = validators[msg.sender];
        if (!v.active) revert NotValidator();
        if (!v.leaving) {
            v.leaving = true;
            v.leaveReadyAt = uint64(block.timestamp) + params_.validatorLeaveDelay;
        }
        emit ValidatorLeaveRequested(msg.sender, v.leaveReadyAt);
    }

    /// The id of the set change from `epoch` that adds `joins` and removes
    /// `leaves`.
    function setChangeId(uint64 epoch, address[] calldata joins, address[] calldata leaves)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(epoch, joins, leaves));
    }

    /// The caller, a member of the current set, approves the change that
    /// adds `joins` (join requests past their delay) and removes `leaves`
    /// (leave requests past their delay, or members slashed below the
    /// minimum stake). Applied once approvals reach `quorumBps` of the set's
    /// weight: the epoch advances and `ValidatorSetChanged` lists the new
    /// set.
    function approveSetChange(uint64 epoch, address[] calldata joins, address[] calldata leaves) external {
        if (epoch != validatorEpoch) revert WrongEpoch(validatorEpoch);
        Validator storage me = validators[msg.sender];
        if (!me.active) revert NotValidator();
        if (joins.length == 0 && leaves.length == 0) revert BadSetChange();
        // Checked at every approval, not only the one reaching quorum, so
        // nobody's approval is recorded for a change that cannot apply yet
        // (it would otherwise apply the moment the delay ends, with no
        // validator looking at it again).
        _checkSetChange(joins, leaves);
        bytes32 id = setChangeId(epoch, joins, leaves);
        if (setChangeApproved[id][msg.sender]) revert AlreadyApproved();
        setChangeApproved[id][msg.sender] = true;
        setChangeWeight[id] += me.weight;
        emit SetChangeApproved(epoch, id, msg.sender, me.weight);
        if (_quorum(setChangeWeight[id])) _applySetChange(joins, leaves);
    }

    // ---- slashing ----

    /// The id of a slash of `amount` wei from `target` (an operator or a
    /// validator account, by `targetKind`) for `evidence`, in this epoch.
    function slashId(uint8 targetKind, address target, uint256 amount, bytes32 evidence)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(validatorEpoch, targetKind, target, amount, evidence));
    }

    /// The caller, a member of the current set, approves slashing `amount`
    /// wei from `target` for `evidence` (a commitment to the measurements
    /// that justify it). Executed once approvals reach `quorumBps`: taken
    /// from the target's stake, then from its unbonding stake; `slashBurnBps`
    /// burnt, the rest paid to the approving validators by weight.
    function approveSlash(uint8 targetKind, address target, uint256 amount, bytes32 evidence) external {
        if (targetKind != TARGET_OPERATOR && targetKind != TARGET_VALIDATOR) revert BadSlash();
        if (amount == 0) revert BadSlash();
        Validator storage me = validators[msg.sender];
        if (!me.active) revert NotValidator();
        bytes32 id = slashId(targetKind, target, amount, evidence);
        SlashVote storage vote = slashVotes_[id];
        if (vote.executed) revert SlashAlreadyExecuted(id);
        if (slashApproved[id][msg.sender]) revert AlreadyApproved();
        slashApproved[id][msg.sender] = true;
        vote.approvedWeight += me.weight;
        vote.approvers.push(msg.sender);
        emit SlashApproved(id, msg.sender, me.weight);
        if (_quorum(vote.approvedWeight)) {
            vote.executed = true;
            _slash(targetKind, target, amount, evidence, vote.approvers);
        }
    }

    // ---- release votes (docs/chain.md, "Release votes") ----

    /// The hook of `ReleaseRegistry.settle`, which alone may call it: each
    /// of `losers` (validators that voted against the outcome or committed
    /// without revealing) loses `slashBps` of its bonded validator stake;
    /// `refund` of the value sent (the proposal's bond) is credited to
    /// `refundTo`, and the rest with the slashed stake to `winners` by
    /// weight (`rewards`); with no winners, or as rounding dust, it is
    /// burnt. The stake lives here, so the release contract slashes
    /// through this one function, not through approvals.
    function settleReleaseVote(
        address[] calldata losers,
        uint16 slashBps,
        address[] calldata winners,
        address refundTo,
        uint256 refund,
        bytes32 evidence
    ) external payable {
        if (msg.sender != address(releaseRegistry)) revert NotReleaseRegistry();
        if (refund > 0) rewards[refundTo] += refund;
        uint256 pool = msg.value - refund;
        bool paying = winners.length > 0;
        for (uint256 i = 0; i < losers.length; i++) {
            Validator storage v = validators[losers[i]];
            uint256 taken = v.stake * slashBps / BPS;
            v.stake -= taken;
            pool += taken;
            emit Slashed(
                TARGET_VALIDATOR, losers[i], taken, paying ? 0 : taken, paying ? taken : 0, v.stake, evidence
            );
        }
        totalBurnt += pool - _payByWeight(winners, pool);
    }

    // ---- measurement epochs (docs/chain.md, "Measurement epochs") ----

    /// The current measurement epoch: whole `measureEpochSeconds` since
    /// `measureGenesis`.
    function measureEpoch() public view returns (uint64) {
        return (uint64(block.timestamp) - measureGenesis) / params_.measureEpochSeconds;
    }

    /// When measurement epoch `epoch` starts (chain time; the largest
    /// uint64 for an epoch beyond it, so no epoch number reverts with an
    /// overflow instead of its typed error).
    function measureEpochStart(uint256 epoch) public view returns (uint64) {
        return _saturated(uint256(measureGenesis) + epoch * params_.measureEpochSeconds);
    }

    /// The caller, a member of the current set, commits to its report of
    /// the current measurement epoch: `commitment` is
    /// `sha256(COMMITMENT_DOMAIN ‖ reveal)`. Once per validator and epoch,
    /// and only during the epoch, so nobody commits after seeing another's
    /// reveal.
    function commitReport(uint64 epoch, bytes32 commitment) external {
        if (!validators[msg.sender].active) revert NotValidator();
        if (epoch != measureEpoch()) {
            revert CommitWindowClosed(
                epoch, measureEpochStart(epoch), measureEpochStart(uint256(epoch) + 1), uint64(block.timestamp)
            );
        }
        if (commitment == bytes32(0)) revert ZeroCommitment();
        mapping(address => bytes32) storage commitments = reportCommitments[epoch];
        if (commitments[msg.sender] != bytes32(0)) revert AlreadyCommitted(epoch);
        commitments[msg.sender] = commitment;
        emit ReportCommitted(epoch, msg.sender, commitment);
    }

    /// The caller reveals the report it committed to for `epoch`, during the
    /// first `revealWindowSeconds` of epoch `epoch + 1`. Checked here: the
    /// length, the commitment, and that the reveal's epoch field (bytes
    /// 1..9) is `epoch` and its validator field (bytes 9..41) the caller's
    /// validator key; the rest of the encoding is checked by every reader
    /// (`openrelay-measure`'s `verify_reveal`). Once.
    function revealReport(uint64 epoch, bytes calldata reveal) external {
        uint64 opensAt = measureEpochStart(uint256(epoch) + 1);
        uint64 closesAt = _saturated(uint256(opensAt) + params_.revealWindowSeconds);
        if (block.timestamp < opensAt || block.timestamp >= closesAt) {
            revert RevealWindowClosed(epoch, opensAt, closesAt, uint64(block.timestamp));
        }
        bytes32 commitment = reportCommitments[epoch][msg.sender];
        if (commitment == bytes32(0)) revert NotCommitted(epoch);
        if (reportRevealed[epoch][msg.sender]) revert AlreadyRevealed(epoch);
        if (reveal.length < MIN_REVEAL_BYTES || reveal.length > MAX_REVEAL_BYTES) {
            revert RevealLength(reveal.length, MIN_REVEAL_BYTES, MAX_REVEAL_BYTES);
        }
        bytes32 revealHash = sha256(abi.encodePacked(COMMITMENT_DOMAIN, reveal));
        if (revealHash != commitment) revert CommitmentMismatch(epoch, commitment, revealHash);
        uint64 revealEpoch = uint64(bytes8(reveal[1:9]));
        if (revealEpoch != epoch) revert RevealEpochMismatch(epoch, revealEpoch);
        bytes32 key = validators[msg.sender].validatorKey;
        bytes32 revealKey = bytes32(reveal[9:41]);
        if (revealKey != key) revert RevealKeyMismatch(key, revealKey);
        reportRevealed[epoch][msg.sender] = true;
        emit ReportRevealed(epoch, msg.sender, reveal);
    }

    // ---- internals ----

    function _saturated(uint256 time) private pure returns (uint64) {
        return time > type(uint64).max ? type(uint64).max : uint64(time);
    }

    function _operator(address account) private view returns (Operator storage o) {
        o = operators[account];
        if (o.operatorKey == bytes32(0)) revert NotOperator();
    }

    function _requireCover(Operator storage o, uint256 mbps) private view {
        uint256 required = coverFor(mbps);
        if (o.stake < required) revert InsufficientStake(required, o.stake);
    }

    function _unbond(address account, uint256 amount) private returns (uint64 readyAt) {
        Unbonding storage u = unbonding[account];
        u.amount += amount;
        readyAt = uint64(block.timestamp) + params_.unbondingDelay;
        u.readyAt = readyAt;
    }

    function _quorum(uint256 weight) private view returns (bool) {
        return weight * BPS >= activeWeight * params_.quorumBps;
    }

    /// Whether every leave is a member past its leave delay (or slashed
    /// below the minimum stake) and every join a request past its join
    /// delay whose stake (after any slash) still meets the minimum.
    function _checkSetChange(address[] calldata joins, address[] calldata leaves) private view {
        for (uint256 i = 0; i < leaves.length; i++) {
            Validator storage v = validators[leaves[i]];
            if (!v.active) revert BadSetChange();
            bool matured = v.leaving && block.timestamp >= v.leaveReadyAt;
            if (!matured && _meetsMinimum(v.stake)) revert BadSetChange();
        }
        for (uint256 i = 0; i < joins.length; i++) {
            Validator storage v = validators[joins[i]];
            if (!v.pending || block.timestamp < v.joinReadyAt || !_meetsMinimum(v.stake)) revert BadSetChange();
        }
    }

    function _meetsMinimum(uint256 amount) private view returns (bool) {
        return amount >= params_.minValidatorStake && amount > 0;
    }

    /// Applies a change `_checkSetChange` accepted in this transaction; the
    /// `active`/`pending` guards refuse an account listed twice.
    function _applySetChange(address[] calldata joins, address[] calldata leaves) private {
        for (uint256 i = 0; i < leaves.length; i++) {
            Validator storage v = validators[leaves[i]];
            if (!v.active) revert BadSetChange();
            uint256 amount = v.stake;
            delete validators[leaves[i]];
            _unbond(leaves[i], amount);
            _removeFromSet(leaves[i]);
        }
        for (uint256 i = 0; i < joins.length; i++) {
            Validator storage v = validators[joins[i]];
            if (!v.pending) revert BadSetChange();
            v.pending = false;
            v.active = true;
            activeSet_.push(joins[i]);
        }
        if (activeSet_.length == 0) revert BadSetChange();
        if (activeSet_.length > params_.maxValidators) revert SetFull(params_.maxValidators);
        validatorEpoch += 1;
        uint256 n = activeSet_.length;
        bytes32[] memory keys = new bytes32[](n);
        uint256[] memory weights = new uint256[](n);
        uint256 total;
        for (uint256 i = 0; i < n; i++) {
            Validator storage v = validators[activeSet_[i]];
            v.weight = v.stake;
            keys[i] = v.validatorKey;
            weights[i] = v.stake;
            total += v.stake;
        }
        // A set without weight would reach its quorum with any one
        // member's approval (0 >= 0).
        if (total == 0) revert BadSetChange();
        activeWeight = total;
        emit ValidatorSetChanged(validatorEpoch, activeSet_, keys, weights);
    }

    function _removeFromSet(address account) private {
        uint256 n = activeSet_.length;
        for (uint256 i = 0; i < n; i++) {
            if (activeSet_[i] == account) {
                // Keep the order (the set's list is part of what clients
                // check): shift the rest down.
                for (uint256 j = i; j + 1 < n; j++) {
                    activeSet_[j] = activeSet_[j + 1];
                }
                activeSet_.pop();
                return;
            }
        }
    }

    function _slash(uint8 targetKind, address target, uint256 amount, bytes32 evidence, address[] storage approvers)
        private
    {
        uint256 taken;
        uint256 stakeLeft;
        if (targetKind == TARGET_OPERATOR) {
            Operator storage o = operators[target];
            taken = amount < o.stake ? amount : o.stake;
            o.stake -= taken;
            stakeLeft = o.stake;
        } else {
            Validator storage v = validators[target];
            taken = amount < v.stake ? amount : v.stake;
            v.stake -= taken;
            stakeLeft = v.stake;
        }
        Unbonding storage u = unbonding[target];
        if (taken < amount && u.amount > 0) {
            uint256 more = amount - taken < u.amount ? amount - taken : u.amount;
            u.amount -= more;
            taken += more;
        }
        uint256 burnt = taken * params_.slashBurnBps / BPS;
        uint256 rewarded = taken - burnt;
        totalBurnt += burnt;
        uint256 paid = _payByWeight(approvers, rewarded);
        // Rounding dust is burnt too.
        totalBurnt += rewarded - paid;
        emit Slashed(targetKind, target, taken, burnt + rewarded - paid, paid, stakeLeft, evidence);
    }

    /// Credits `amount` to `to` by their quorum weights (`rewards`);
    /// returns what was paid (rounding leaves dust for the caller).
    function _payByWeight(address[] memory to, uint256 amount) private returns (uint256 paid) {
        uint256 weight;
        for (uint256 i = 0; i < to.length; i++) {
            weight += validators[to[i]].weight;
        }
        if (weight == 0) return 0;
        for (uint256 i = 0; i < to.length; i++) {
            uint256 share = amount * validators[to[i]].weight / weight;
            rewards[to[i]] += share;
            paid += share;
        }
    }
}
