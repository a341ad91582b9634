//! The group state machine driven directly: events in, effects out.

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig::default(), "t".into())
}

fn join_req(member_id: &str, client: &str) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: client.into(),
        client_host: "/10.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

fn joins(fx: &[Effect]) -> Vec<(Waiter, JoinResult)> {
    fx.iter().filter_map(|e| if let Effect::Join(w, r) = e { Some((*w, r.clone())) } else { None }).collect()
}

fn syncs(fx: &[Effect]) -> Vec<(Waiter, SyncResult)> {
    fx.iter().filter_map(|e| if let Effect::Sync(w, r) = e { Some((*w, r.clone())) } else { None }).collect()
}

fn store_generation(fx: &[Effect]) -> Option<i32> {
    fx.iter().find_map(|e| if let Effect::StoreGroup { sync_generation, .. } = e { *sync_generation } else { None })
}

/// Two members join a new group, the initial delay passes, both get
/// generation 1; the leader syncs; the store completes; both have their
/// assignment. Returns (coordinator, leader id, follower id, now).
fn stable_group_of_two() -> (Coordinator, String, String, i64) {
    let mut c = coordinator();
    assert!(c.join(0, 0, join_req("", "a"), 1).is_empty(), "parked for the initial delay");
    assert!(c.join(100, 0, join_req("", "b"), 2).is_empty());
    assert_eq!(c.groups["g"].state, GroupState::PreparingRebalance);
    // group.initial.rebalance.delay.ms = 3000, extended once because b
    // arrived in the first window.
    assert!(c.tick(2_999).is_empty());
    assert!(c.tick(3_000).is_empty(), "a member arrived during the delay: another window");
    let fx = c.tick(6_000);
    let js = joins(&fx);
    assert_eq!(js.len(), 2);
    let leader = js[0].1.leader.clone();
    let (lw, lr) = js.iter().find(|(_, r)| r.member_id == leader).unwrap().clone();
    let (_, fr) = js.iter().find(|(_, r)| r.member_id != leader).unwrap().clone();
    assert_eq!(lr.generation, 1);
    assert_eq!(lr.members.len(), 2, "the leader gets the member list");
    assert!(fr.members.is_empty(), "followers do not");
    assert_eq!(lr.protocol_name.as_deref(), Some("range"));
    let _ = lw;
    let follower = fr.member_id.clone();
    // The follower syncs first and waits.
    assert!(c.sync(6_010, "g", 1, &follower, None, None, None, vec![], 11).is_empty());
    let fx =
        c.sync(6_020, "g", 1, &leader, None, None, None, vec![(follower.clone(), Bytes::from_static(b"f")), (leader.clone(), Bytes::from_static(b"l"))], 12);
    assert_eq!(store_generation(&fx), Some(1));
    assert!(syncs(&fx).is_empty(), "nobody gets the assignment before it is stored");
    let fx = c.group_stored(6_030, "g", 1, Ok(()));
    let mut s = syncs(&fx);
    s.sort_by_key(|(w, _)| *w);
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[0],
        (11, SyncResult { error: None, protocol_type: Some("consumer".into()), protocol_name: Some("range".into()), assignment: Bytes::from_static(b"f") })
    );
    assert_eq!(s[1].1.assignment, Bytes::from_static(b"l"));
    assert_eq!(c.groups["g"].state, GroupState::Stable);
    (c, leader, follower, 6_030)
}

#[test]
fn two_members_join_and_sync_one_generation_with_the_leaders_assignment() {
    let (c, leader, follower, _) = stable_group_of_two();
    let g = &c.groups["g"];
    assert_eq!(g.generation, 1);
    assert_eq!(g.leader.as_deref(), Some(leader.as_str()));
    assert_eq!(g.members[&follower].assignment, Bytes::from_static(b"f"));
}

#[test]
fn new_member_rebalances_and_others_heartbeat_rebalance_in_progress() {
    let (mut c, leader, follower, now) = stable_group_of_two();
    assert!(c.join(now, 0, join_req("", "c"), 20).is_empty());
    assert_eq!(c.groups["g"].state, GroupState::PreparingRebalance);
    assert_eq!(c.heartbeat(now + 1, "g", 1, &follower, None), Err(ResponseError::RebalanceInProgress));
    assert!(c.join(now + 2, 0, join_req(&follower, "b"), 21).is_empty());
    // The last one rejoining completes the join phase at once.
    let fx = c.join(now + 3, 0, join_req(&leader, "a"), 22);
    let js = joins(&fx);
    assert_eq!(js.len(), 3);
    assert!(js.iter().all(|(_, r)| r.generation == 2 && r.error.is_none()));
    assert_eq!(c.groups["g"].state, GroupState::CompletingRebalance);
    // Heartbeats in CompletingRebalance are fine; old generations are not.
    assert_eq!(c.heartbeat(now + 4, "g", 2, &follower, None), Ok(()));
    assert_eq!(c.heartbeat(now + 4, "g", 1, &follower, None), Err(ResponseError::IllegalGeneration));
}

#[test]
fn member_that_stops_heartbeating_is_removed_after_session_timeout() {
    let (mut c, leader, follower, now) = stable_group_of_two();
    assert_eq!(c.heartbeat(now + 9_000, "g", 1, &leader, None), Ok(()));
    assert!(c.tick(now + SESSION_MS as i64 - 1).is_empty());
    c.tick(now + SESSION_MS as i64);
    let g = &c.groups["g"];
    assert!(!g.members.contains_key(&follower), "expired");
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(c.heartbeat(now + 10_001, "g", 1, &follower, None), Err(ResponseError::UnknownMemberId));
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let (mut c, leader, follower, now) = stable_group_of_two();
    // The leader rejoins (forces a rebalance); the follower never does
    // but keeps heartbeating until the join phase ends.
    assert!(c.join(now, 0, join_req(&leader, "a"), 30).is_empty());
    for t in (1..REBALANCE_MS as i64).step_by(3_000) {
        let _ = c.heartbeat(now + t, "g", 1, &follower, None);
        assert!(joins(&c.tick(now + t)).is_empty());
    }
    let fx = c.tick(now + REBALANCE_MS as i64);
    let js = joins(&fx);
    assert_eq!(js.len(), 1);
    assert_eq!(js[0].1.generation, 2);
    assert_eq!(js[0].1.members.len(), 1);
    assert!(!c.groups["g"].members.contains_key(&follower));
}

#[test]
fn join_v4_with_empty_member_id_gets_member_id_required_kip_394() {
    let mut c = coordinator();
    let mut req = join_req("", "client");
    req.require_known_member_id = true;
    let fx = c.join(0, 0, req.clone(), 1);
    let js = joins(&fx);
    assert_eq!(js[0].1.error, Some(ResponseError::MemberIdRequired));
    let id = js[0].1.member_id.clone();
    assert!(id.starts_with("client-"), "{id}");
    // Deterministic: a fresh coordinator with the same prefix gives the
    // same id.
    let mut c2 = coordinator();
    assert_eq!(joins(&c2.join(0, 0, req.clone(), 1))[0].1.member_id, id);
    req.member_id = id.clone();
    assert!(c.join(10, 0, req, 2).is_empty(), "parked in the initial delay");
    assert!(c.groups["g"].members.contains_key(&id));
}

#[test]
fn session_timeout_outside_group_bounds_is_invalid_session_timeout() {
    let mut c = coordinator();
    for t in [5_999, 1_800_001] {
        let mut req = join_req("", "a");
        req.session_timeout_ms = t;
        assert_eq!(joins(&c.join(0, 0, req, 1))[0].1.error, Some(ResponseError::InvalidSessionTimeout));
    }
}

#[test]
fn join_with_no_common_protocol_is_inconsistent_group_protocol() {
    let (mut c, ..) = stable_group_of_two();
    let mut req = join_req("", "x");
    req.protocols = vec![("roundrobin".into(), Bytes::new())];
    assert_eq!(joins(&c.join(7_000, 0, req, 1))[0].1.error, Some(ResponseError::InconsistentGroupProtocol));
}

#[test]
fn protocol_is_chosen_by_vote() {
    let mut c = coordinator();
    let mut a = join_req("", "a");
    a.protocols = vec![("range".into(), Bytes::new()), ("roundrobin".into(), Bytes::new())];
    let mut b = join_req("", "b");
    b.protocols = vec![("roundrobin".into(), Bytes::new()), ("range".into(), Bytes::new())];
    let mut d = join_req("", "d");
    d.protocols = vec![("roundrobin".into(), Bytes::new()), ("sticky".into(), Bytes::new()), ("range".into(), Bytes::new())];
    c.join(0, 0, a, 1);
    c.join(0, 0, b, 2);
    c.join(0, 0, d, 3);
    let fx = c.tick(30_000);
    assert!(joins(&fx).iter().all(|(_, r)| r.protocol_name.as_deref() == Some("roundrobin")));
}

#[test]
fn sync_errors_follow_kafka() {
    let (mut c, leader, follower, now) = stable_group_of_two();
    let e = |fx: Vec<Effect>| syncs(&fx)[0].1.error;
    assert_eq!(e(c.sync(now, "g", 0, &follower, None, None, None, vec![], 1)), Some(ResponseError::IllegalGeneration));
    assert_eq!(e(c.sync(now, "g", 1, "nobody", None, None, None, vec![], 2)), Some(ResponseError::UnknownMemberId));
    assert_eq!(e(c.sync(now, "nogroup", 1, "x", None, None, None, vec![], 3)), Some(ResponseError::UnknownMemberId));
    assert_eq!(e(c.sync(now, "g", 1, &follower, None, Some("connect"), None, vec![], 4)), Some(ResponseError::InconsistentGroupProtocol));
    // Stable: the member's assignment at once.
    assert_eq!(syncs(&c.sync(now, "g", 1, &follower, None, None, None, vec![], 5))[0].1.assignment, Bytes::from_static(b"f"));
    // PreparingRebalance: REBALANCE_IN_PROGRESS.
    c.join(now, 0, join_req(&leader, "a"), 6);
    assert_eq!(e(c.sync(now, "g", 1, &follower, None, None, None, vec![], 7)), Some(ResponseError::RebalanceInProgress));
}

#[test]
fn failed_group_store_fails_the_sync_and_rebalances() {
    let mut c = coordinator();
    c.join(0, 0, join_req("", "a"), 1);
    let fx = c.tick(3_000);
    let (_, r) = joins(&fx)[0].clone();
    let fx = c.sync(3_001, "g", 1, &r.member_id, None, None, None, vec![(r.member_id.clone(), Bytes::from_static(b"x"))], 2);
    assert_eq!(store_generation(&fx), Some(1));
    let fx = c.group_stored(3_002, "g", 1, Err(ResponseError::NotCoordinator));
    assert_eq!(syncs(&fx)[0].1.error, Some(ResponseError::NotCoordinator));
    assert_eq!(c.groups["g"].state, GroupState::PreparingRebalance);
}

#[test]
fn leave_group_batch_removes_members_and_rebalances() {
    let (mut c, leader, follower, now) = stable_group_of_two();
    let (errors, _) = c.leave(now, "g", &[(follower.clone(), None), ("ghost".into(), None)]);
    assert_eq!(errors, vec![None, Some(ResponseError::UnknownMemberId)]);
    assert_eq!(c.groups["g"].state, GroupState::PreparingRebalance);
    let fx = c.join(now + 1, 0, join_req(&leader, "a"), 9);
    assert_eq!(joins(&fx)[0].1.generation, 2);
    // The last member leaving empties the group (generation 3, stored).
    let (errors, fx) = c.leave(now + 2, "g", &[(leader.clone(), None)]);
    assert_eq!(errors, vec![None]);
    let fx2 = c.tick(now + 2 + REBALANCE_MS as i64);
    assert_eq!(c.groups["g"].state, GroupState::Empty);
    assert!(fx.iter().chain(&fx2).any(|e| matches!(e, Effect::StoreGroup { value, .. } if value.members.is_empty())));
}

fn static_req(member_id: &str, instance: &str) -> JoinRequest {
    let mut r = join_req(member_id, instance);
    r.group_instance_id = Some(instance.into());
    r.require_known_member_id = true;
    r
}

/// KIP-345: two static members reach Stable; returns (c, [a id, b id], now).
fn stable_static_group() -> (Coordinator, Vec<String>, i64) {
    let mut c = coordinator();
    // Static members get their id at once (no MEMBER_ID_REQUIRED round).
    assert!(c.join(0, 0, static_req("", "i-a"), 1).is_empty());
    assert!(c.join(0, 0, static_req("", "i-b"), 2).is_empty());
    assert!(c.tick(3_000).is_empty());
    let js = joins(&c.tick(6_000));
    assert_eq!(js.len(), 2);
    let leader = js[0].1.leader.clone();
    let assignments: Vec<(String, Bytes)> = js.iter().map(|(_, r)| (r.member_id.clone(), Bytes::from(r.member_id.clone()))).collect();
    for (w, r) in &js {
        c.sync(6_001, "g", 1, &r.member_id, None, None, None, if r.member_id == leader { assignments.clone() } else { vec![] }, 10 + w);
    }
    c.group_stored(6_002, "g", 1, Ok(()));
    assert_eq!(c.groups["g"].state, GroupState::Stable);
    let ids = ["i-a", "i-b"].iter().map(|i| c.groups["g"].static_members[*i].clone()).collect();
    (c, ids, 6_002)
}

#[test]
fn static_member_rejoin_gets_new_id_without_rebalance_and_old_id_is_fenced_kip_345() {
    let (mut c, ids, now) = stable_static_group();
    let old_b = ids[1].clone();
    let fx = c.join(now, 0, static_req("", "i-b"), 50);
    let js = joins(&fx);
    assert_eq!(js.len(), 1);
    let r = &js[0].1;
    assert_eq!(r.error, None);
    assert_eq!(r.generation, 1, "no rebalance");
    assert_ne!(r.member_id, old_b);
    assert!(fx.iter().any(|e| matches!(e, Effect::StoreGroup { sync_generation: None, .. })), "the new member id is persisted");
    assert_eq!(c.groups["g"].state, GroupState::Stable);
    // Its previous assignment, under the new id.
    let s = syncs(&c.sync(now, "g", 1, &r.member_id, Some("i-b"), None, None, vec![], 51));
    assert_eq!(s[0].1.assignment, Bytes::from(old_b.clone()));
    // The old id is fenced everywhere.
    assert_eq!(c.heartbeat(now, "g", 1, &old_b, Some("i-b")), Err(ResponseError::FencedInstanceId));
    let e = syncs(&c.sync(now, "g", 1, &old_b, Some("i-b"), None, None, vec![], 52))[0].1.error;
    assert_eq!(e, Some(ResponseError::FencedInstanceId));
    assert_eq!(c.leave(now, "g", &[(old_b.clone(), Some("i-b".into()))]).0, vec![Some(ResponseError::FencedInstanceId)]);
    let plan = c.validate_commit(now, 0, "g", 1, &old_b, Some("i-b"), vec![]);
    assert_eq!(plan, Err(ResponseError::FencedInstanceId));
}

#[test]
fn static_member_session_timeout_triggers_rebalance_kip_345() {
    let (mut c, ids, now) = stable_static_group();
    c.heartbeat(now + 5_000, "g", 1, &ids[0], Some("i-a")).unwrap();
    c.tick(now + SESSION_MS as i64);
    let g = &c.groups["g"];
    assert!(!g.members.contains_key(&ids[1]));
    assert!(!g.static_members.contains_key("i-b"));
    assert_eq!(g.state, GroupState::PreparingRebalance);
}

#[test]
fn static_member_leaves_by_instance_id_kip_345() {
    let (mut c, ids, now) = stable_static_group();
    let (errors, _) = c.leave(now, "g", &[(String::new(), Some("i-a".into())), (String::new(), Some("i-zzz".into()))]);
    assert_eq!(errors, vec![None, Some(ResponseError::UnknownMemberId)]);
    assert!(!c.groups["g"].members.contains_key(&ids[0]));
    assert_eq!(c.groups["g"].state, GroupState::PreparingRebalance);
}

#[test]
fn offset_commit_validation_follows_handle_commit_offsets() {
    let (mut c, leader, _, now) = stable_group_of_two();
    let o = || vec![(("t".to_string(), 0), 5, -1, None)];
    assert!(c.validate_commit(now, 0, "g", 1, &leader, None, o()).is_ok());
    assert_eq!(c.validate_commit(now, 0, "g", 0, &leader, None, o()), Err(ResponseError::IllegalGeneration));
    assert_eq!(c.validate_commit(now, 0, "g", 1, "ghost", None, o()), Err(ResponseError::UnknownMemberId));
    // Standalone commit to a live group fails; to an unknown group works.
    assert_eq!(c.validate_commit(now, 0, "g", -1, "", None, o()), Err(ResponseError::UnknownMemberId));
    assert!(c.validate_commit(now, 0, "other", -1, "", None, o()).is_ok());
    // CompletingRebalance: REBALANCE_IN_PROGRESS.
    c.join(now, 0, join_req(&leader, "a"), 1);
    let follower = c.groups["g"].members.keys().find(|k| **k != leader).unwrap().clone();
    c.join(now, 0, join_req(&follower, "b"), 2);
    assert_eq!(c.groups["g"].state, GroupState::CompletingRebalance);
    assert_eq!(c.validate_commit(now, 0, "g", 2, &leader, None, o()), Err(ResponseError::RebalanceInProgress));
    // Too-large metadata is refused per partition.
    let big = vec![(("t".to_string(), 1), 5, -1, Some("x".repeat(4_097)))];
    let plan = c.validate_commit(now, 0, "other", -1, "", None, big).unwrap();
    assert_eq!(plan.refused, vec![(("t".to_string(), 1), ResponseError::OffsetMetadataTooLarge)]);
}

#[test]
fn stored_offsets_are_fetched_and_unknown_partitions_are_minus_one() {
    let mut c = coordinator();
    let plan = c.validate_commit(100, 0, "s", -1, "", None, vec![(("t".to_string(), 0), 42, 3, Some("m".into()))]).unwrap();
    c.offsets_stored(100, 0, "s", plan.offsets);
    let got = c.fetch_offsets("s", Some(&[("t".to_string(), 0), ("t".to_string(), 9)]));
    assert_eq!(got[0].1.offset, 42);
    assert_eq!(got[0].1.leader_epoch, 3);
    assert_eq!(got[1].1.offset, -1);
    assert_eq!(c.fetch_offsets("nope", Some(&[("t".to_string(), 0)]))[0].1.offset, -1);
    assert_eq!(c.fetch_offsets("s", None).len(), 1);
}

#[test]
fn empty_group_offsets_expire_after_retention_and_the_group_is_removed() {
    let mut c = Coordinator::new(GroupConfig { offsets_retention_ms: 1_000, ..GroupConfig::default() }, "t".into());
    let plan = c.validate_commit(0, 0, "s", -1, "", None, vec![(("t".to_string(), 0), 1, -1, None)]).unwrap();
    c.offsets_stored(0, 0, "s", plan.offsets);
    assert!(c.expire_offsets(999).is_empty());
    let fx = c.expire_offsets(1_000);
    assert_eq!(fx, vec![Effect::Tombstones { group_id: "s".into(), partition: 0, offsets: vec![("t".into(), 0)], group: true }]);
}

#[test]
fn loaded_group_comes_back_stable_with_its_generation() {
    let (c, leader, follower, _) = stable_group_of_two();
    let g = &c.groups["g"];
    let value = g.record(&g.current_assignment());
    let mut c2 = coordinator();
    c2.load_group(10_000, 3, "g", Some(value), BTreeMap::new());
    let g2 = &c2.groups["g"];
    assert_eq!(g2.state, GroupState::Stable);
    assert_eq!(g2.generation, 1);
    assert_eq!(g2.leader.as_deref(), Some(leader.as_str()));
    assert_eq!(c2.heartbeat(10_001, "g", 1, &follower, None), Ok(()));
    assert_eq!(syncs(&c2.sync(10_002, "g", 1, &follower, None, None, None, vec![], 1))[0].1.assignment, Bytes::from_static(b"f"));
    // Unloading answers nothing parked and forgets the group.
    assert!(c2.unload_partition(3).is_empty());
    assert!(c2.groups.is_empty());
}

/// A ConsumerProtocolSubscription v0 for `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
    Bytes::from(b)
}

// KIP-496: a live consumer group may delete offsets only of topics no
// member subscribes to; an Empty group may delete any.
#[test]
fn offset_delete_is_refused_for_subscribed_topics_kip_496() {
    let mut c = coordinator();
    let mut req = join_req("", "a");
    req.protocols = vec![("range".into(), subscription(&["events"]))];
    c.join(0, 0, req, 1);
    let js = joins(&c.tick(3_000));
    assert_eq!(js.len(), 1);
    let tps = [("events".to_string(), 0), ("old".to_string(), 0)];
    let (_, errors) = c.validate_offset_delete("g", &tps).unwrap();
    assert_eq!(errors, vec![Some(ResponseError::GroupSubscribedToTopic), None]);
    assert_eq!(c.validate_offset_delete("nope", &tps), Err(ResponseError::GroupIdNotFound));
    let member = js[0].1.member_id.clone();
    c.leave(3_001, "g", &[(member, None)]);
    c.tick(3_001 + REBALANCE_MS as i64);
    assert_eq!(c.groups["g"].state, GroupState::Empty);
    assert_eq!(c.validate_offset_delete("g", &tps).unwrap().1, vec![None, None]);
    assert_eq!(consumer_subscription_topics(&subscription(&["a", "bc"])), Some(vec!["a".to_string(), "bc".to_string()]));
    assert_eq!(consumer_subscription_topics(&[0, 0, 0, 0, 0, 9]), None, "truncated");
}

// Flexible versions allow strings longer than the records' i16 lengths:
// such requests are refused, never stored (and never a panic).
#[test]
fn names_too_long_for_the_offsets_topic_are_refused() {
    let mut c = coordinator();
    let long = "x".repeat(40_000);
    let mut req = join_req("", "a");
    req.group_id = long.clone();
    assert_eq!(joins(&c.join(0, 0, req, 1))[0].1.error, Some(ResponseError::InvalidGroupId));
    let mut req = join_req("", "a");
    req.group_instance_id = Some(long.clone());
    assert_eq!(joins(&c.join(0, 0, req, 2))[0].1.error, Some(ResponseError::InvalidRequest));
    assert_eq!(c.validate_commit(0, 0, &long, -1, "", None, vec![]), Err(ResponseError::InvalidGroupId));
    let plan = c.validate_commit(0, 0, "s", -1, "", None, vec![((long.clone(), 0), 1, -1, None)]).unwrap();
    assert_eq!(plan.refused, vec![((long.clone(), 0), ResponseError::InvalidTopicException)]);
    assert!(plan.offsets.is_empty());
}
