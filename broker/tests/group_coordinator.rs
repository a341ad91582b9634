//! The classic group coordinator end to end over the wire: membership and
//! rebalances (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), static
//! membership (KIP-345), offset commits and fetches, NOT_COORDINATOR away
//! from the coordinator, and failover: a new coordinator loads the group
//! and its offsets from `__consumer_offsets` (tombstones included).
#![cfg(madsim)]

mod common;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ksim_broker::client::network::Pool;
use ksim_broker::client::AdminConfig;
use ksim_broker::config::Settings;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const GROUP: &str = "test-group";
const SESSION_MS: i32 = 6_000;
const REBALANCE_MS: i32 = 20_000;

/// Runs `body` on the client node of a fresh [`cluster`], given the
/// bootstrap addresses.
async fn on_client<F, Fut>(body: F)
where
    F: FnOnce(Vec<SocketAddr>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let c = cluster(&[]);
    c.client.spawn(body(c.bootstrap.clone())).await.unwrap();
}

/// One controller and three brokers with a 5-partition offsets topic, a
/// short initial rebalance delay and `extra` broker settings.
fn cluster(extra: &[(&str, &str)]) -> common::TestCluster {
    let mut settings = Settings::from_pairs([("offsets.topic.num.partitions", "5"), ("group.initial.rebalance.delay.ms", "100")]);
    for (k, v) in extra {
        settings.set(k, v);
    }
    common::start_cluster(1, 3, Settings::new(), settings)
}

/// A client with its own connections (a parked JoinGroup blocks its
/// connection, as in Kafka).
fn pool(client_id: &str) -> Pool {
    let map: BTreeMap<String, String> =
        [("client.id".to_string(), client_id.to_string()), ("request.timeout.ms".to_string(), "60000".to_string())].into_iter().collect();
    Pool::new(AdminConfig::from_map(&map).unwrap().network)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn call(pool: &Pool, addr: SocketAddr, api: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    pool.request(addr, api, version, body).await.unwrap_or_else(|e| panic!("{api:?} to {addr}: {e}"))
}

/// The group's coordinator (node id, address), once it answers for the
/// group (topic created, partition loaded).
async fn coordinator(pool: &Pool, bootstrap: &[SocketAddr], group: &str) -> (i32, SocketAddr) {
    for _ in 0..200 {
        for b in bootstrap {
            let req = FindCoordinatorRequest::default().with_key(s(group)).with_key_type(0);
            let Ok(ResponseKind::FindCoordinator(r)) = pool.request(*b, ApiKey::FindCoordinator, 3, RequestKind::FindCoordinator(req)).await else {
                continue;
            };
            if r.error_code != 0 {
                continue;
            }
            let addr = common::broker_addr(r.node_id.0 as usize);
            if fetch_offset(pool, addr, group, "t", 0).await.0 == 0 {
                return (r.node_id.0, addr);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no coordinator for {group}");
}

/// After broker `node` crashed: a fresh client and the group's new
/// coordinator (node id, address) among the other brokers.
async fn coordinator_after_crash(bootstrap: &[SocketAddr], node: usize, group: &str) -> (Pool, i32, SocketAddr) {
    let p = pool("after");
    let alive: Vec<SocketAddr> = bootstrap.iter().enumerate().filter(|(i, _)| *i != node).map(|(_, a)| *a).collect();
    let (id, coord) = coordinator(&p, &alive, group).await;
    assert_ne!(id as usize, node, "the crashed broker cannot coordinate");
    (p, id, coord)
}

fn join_request(group: &str, member_id: &str, instance: Option<&str>, metadata: &[u8]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::copy_from_slice(metadata))])
}

async fn join(pool: &Pool, addr: SocketAddr, group: &str, member_id: &str, instance: Option<&str>) -> JoinGroupResponse {
    let req = join_request(group, member_id, instance, b"sub");
    let ResponseKind::JoinGroup(r) = call(pool, addr, ApiKey::JoinGroup, 7, RequestKind::JoinGroup(req)).await else { panic!("not JoinGroup") };
    r
}

/// A dynamic member's first join with JoinGroup v7: MEMBER_ID_REQUIRED
/// (KIP-394), then the rejoin with the given id.
async fn join_new(pool: &Pool, addr: SocketAddr, group: &str) -> JoinGroupResponse {
    let first = join(pool, addr, group, "", None).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(!first.member_id.is_empty(), "MEMBER_ID_REQUIRED carries the id");
    join(pool, addr, group, first.member_id.as_str(), None).await
}

async fn sync(
    pool: &Pool,
    addr: SocketAddr,
    group: &str,
    generation: i32,
    member: &str,
    instance: Option<&str>,
    assignments: &[(&str, &[u8])],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments.iter().map(|(m, a)| SyncGroupRequestAssignment::default().with_member_id(s(m)).with_assignment(Bytes::copy_from_slice(a))).collect(),
        );
    let ResponseKind::SyncGroup(r) = call(pool, addr, ApiKey::SyncGroup, 5, RequestKind::SyncGroup(req)).await else { panic!("not SyncGroup") };
    r
}

async fn heartbeat(pool: &Pool, addr: SocketAddr, group: &str, generation: i32, member: &str, instance: Option<&str>) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s));
    let ResponseKind::Heartbeat(r) = call(pool, addr, ApiKey::Heartbeat, 4, RequestKind::Heartbeat(req)).await else { panic!("not Heartbeat") };
    r.error_code
}

async fn commit(pool: &Pool, addr: SocketAddr, group: &str, generation: i32, member: &str, tps: &[(&str, i32, i64)]) -> Vec<i16> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (t, p, o) in tps {
        topics
            .entry(t)
            .or_default()
            .push(OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o).with_committed_leader_epoch(-1));
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(topics.into_iter().map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(TopicName(s(t))).with_partitions(ps)).collect());
    let ResponseKind::OffsetCommit(r) = call(pool, addr, ApiKey::OffsetCommit, 8, RequestKind::OffsetCommit(req)).await else { panic!("not OffsetCommit") };
    r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

/// OffsetFetch v7 of one partition: (top-level error, offset).
async fn fetch_offset(pool: &Pool, addr: SocketAddr, group: &str, topic: &str, partition: i32) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(TopicName(s(topic))).with_partition_indexes(vec![partition])]));
    let Ok(ResponseKind::OffsetFetch(r)) = pool.request(addr, ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(req)).await else {
        return (-2, -1);
    };
    let offset = r.topics.first().and_then(|t| t.partitions.first()).map_or(-1, |p| p.committed_offset);
    (r.error_code, offset)
}

async fn describe(pool: &Pool, addr: SocketAddr, group: &str) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let ResponseKind::DescribeGroups(r) = call(pool, addr, ApiKey::DescribeGroups, 5, RequestKind::DescribeGroups(req)).await else {
        panic!("not DescribeGroups")
    };
    r.groups.into_iter().next().unwrap()
}

/// Two dynamic members reach generation 1, Stable, with the leader's
/// assignment: (coordinator addr, [(pool, member id)], leader index).
async fn stable_pair(bootstrap: &[SocketAddr]) -> (SocketAddr, Vec<(Pool, String)>, usize) {
    let (a, b) = (pool("a"), pool("b"));
    let (_, coord) = coordinator(&a, bootstrap, GROUP).await;
    let (ja, jb) = tokio::join!(join_new(&a, coord, GROUP), join_new(&b, coord, GROUP));
    for j in [&ja, &jb] {
        assert_eq!(j.error_code, 0);
        assert_eq!(j.generation_id, 1);
        assert_eq!(j.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
        assert_eq!(j.protocol_type.as_ref().map(|p| p.as_str()), Some("consumer"));
    }
    assert_eq!(ja.leader, jb.leader);
    let leader = if ja.leader == ja.member_id { 0 } else { 1 };
    let (lj, fj) = if leader == 0 { (&ja, &jb) } else { (&jb, &ja) };
    assert_eq!(lj.members.len(), 2, "the leader gets every member's metadata");
    assert!(fj.members.is_empty());
    let (l, f) = (lj.member_id.to_string(), fj.member_id.to_string());
    let (lp, fp) = if leader == 0 { (&a, &b) } else { (&b, &a) };
    // The follower syncs first and waits for the leader's assignment.
    let (fs, ls) = tokio::join!(sync(fp, coord, GROUP, 1, &f, None, &[]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sync(lp, coord, GROUP, 1, &l, None, &[(l.as_str(), b"for-leader"), (f.as_str(), b"for-follower")]).await
    });
    assert_eq!((fs.error_code, ls.error_code), (0, 0));
    assert_eq!(fs.assignment.as_ref(), b"for-follower");
    assert_eq!(ls.assignment.as_ref(), b"for-leader");
    let members = vec![(a, ja.member_id.to_string()), (b, jb.member_id.to_string())];
    (coord, members, leader)
}

#[madsim::test]
async fn two_members_join_and_sync_one_generation_with_the_leaders_assignment() {
    on_client(|bootstrap| async move {
        let (coord, members, _) = stable_pair(&bootstrap).await;
        let d = describe(&members[0].0, coord, GROUP).await;
        assert_eq!(d.error_code, 0);
        assert_eq!(d.group_state.as_str(), "Stable");
        assert_eq!(d.protocol_data.as_str(), "range");
        assert_eq!(d.members.len(), 2);
        assert!(d.members.iter().all(|m| m.client_host.as_str() == "/10.0.3.1"));
        for (p, id) in &members {
            assert_eq!(heartbeat(p, coord, GROUP, 1, id, None).await, 0);
        }
        // ListGroups on the coordinator lists it, Stable (v4).
        let ResponseKind::ListGroups(l) = call(&members[0].0, coord, ApiKey::ListGroups, 4, RequestKind::ListGroups(ListGroupsRequest::default())).await else {
            panic!()
        };
        assert!(l.groups.iter().any(|g| g.group_id.as_str() == GROUP && g.group_state.as_str() == "Stable"));
    })
    .await;
}

#[madsim::test]
async fn third_member_join_rebalances_and_heartbeats_get_rebalance_in_progress() {
    on_client(|bootstrap| async move {
        let (coord, members, _) = stable_pair(&bootstrap).await;
        let third = pool("c");
        let joining = tokio::spawn(async move { join_new(&third, coord, GROUP).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (p, id) in &members {
            assert_eq!(heartbeat(p, coord, GROUP, 1, id, None).await, ResponseError::RebalanceInProgress.code());
        }
        let (r0, r1) = tokio::join!(join(&members[0].0, coord, GROUP, &members[0].1, None), join(&members[1].0, coord, GROUP, &members[1].1, None));
        let r2 = joining.await.unwrap();
        for r in [&r0, &r1, &r2] {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.generation_id, 2, "generation + 1");
        }
        // The old generation is now illegal.
        assert_eq!(heartbeat(&members[0].0, coord, GROUP, 1, &members[0].1, None).await, ResponseError::IllegalGeneration.code());
    })
    .await;
}

#[madsim::test]
async fn member_that_stops_heartbeating_is_removed_after_session_timeout() {
    on_client(|bootstrap| async move {
        let (coord, members, _) = stable_pair(&bootstrap).await;
        let (alive, silent) = (&members[0], &members[1]);
        // Only one member heartbeats; the other is gone after 6 s.
        let mut code = 0;
        for _ in 0..(SESSION_MS / 1_000 + 2) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            code = heartbeat(&alive.0, coord, GROUP, 1, &alive.1, None).await;
            if code != 0 {
                break;
            }
        }
        assert_eq!(code, ResponseError::RebalanceInProgress.code());
        assert_eq!(heartbeat(&silent.0, coord, GROUP, 1, &silent.1, None).await, ResponseError::UnknownMemberId.code());
        let r = join(&alive.0, coord, GROUP, &alive.1, None).await;
        assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, 2, 1));
    })
    .await;
}

#[madsim::test]
async fn leave_group_v3_batch_removes_members_and_rebalances() {
    on_client(|bootstrap| async move {
        let (coord, members, _) = stable_pair(&bootstrap).await;
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_members(vec![MemberIdentity::default().with_member_id(s(&members[1].1)), MemberIdentity::default().with_member_id(s("nobody"))]);
        let ResponseKind::LeaveGroup(r) = call(&members[1].0, coord, ApiKey::LeaveGroup, 4, RequestKind::LeaveGroup(req)).await else { panic!() };
        assert_eq!(r.error_code, 0);
        assert_eq!(r.members.iter().map(|m| m.error_code).collect::<Vec<_>>(), vec![0, ResponseError::UnknownMemberId.code()]);
        assert_eq!(heartbeat(&members[0].0, coord, GROUP, 1, &members[0].1, None).await, ResponseError::RebalanceInProgress.code());
    })
    .await;
}

// KIP-345: a static member restarting (empty member id, same instance id)
// gets a new member id and its previous assignment without a rebalance;
// the old member id is fenced.
#[madsim::test]
async fn static_member_rejoins_without_rebalance_and_old_member_id_is_fenced_kip_345() {
    on_client(|bootstrap| async move {
        let (a, b) = (pool("a"), pool("b"));
        let (_, coord) = coordinator(&a, &bootstrap, GROUP).await;
        let (ja, jb) = tokio::join!(join(&a, coord, GROUP, "", Some("ia")), join(&b, coord, GROUP, "", Some("ib")));
        assert_eq!((ja.error_code, jb.error_code), (0, 0), "static members need no MEMBER_ID_REQUIRED round");
        assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
        let (l, lp, li) = if ja.leader == ja.member_id { (&ja, &a, "ia") } else { (&jb, &b, "ib") };
        let (f, fp, fi) = if ja.leader == ja.member_id { (&jb, &b, "ib") } else { (&ja, &a, "ia") };
        let assignment: Vec<(&str, &[u8])> = vec![(l.member_id.as_str(), b"L"), (f.member_id.as_str(), b"F")];
        let (ls, fs) = tokio::join!(sync(lp, coord, GROUP, 1, l.member_id.as_str(), Some(li), &assignment), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sync(fp, coord, GROUP, 1, f.member_id.as_str(), Some(fi), &[]).await
        });
        assert_eq!((ls.error_code, fs.error_code), (0, 0));
        // The follower restarts: a new process, same instance id.
        let restarted = pool("b-restarted");
        let r = join(&restarted, coord, GROUP, "", Some(fi)).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, 1, "no rebalance");
        assert_ne!(r.member_id, f.member_id);
        let s2 = sync(&restarted, coord, GROUP, 1, r.member_id.as_str(), Some(fi), &[]).await;
        assert_eq!(s2.error_code, 0);
        assert_eq!(s2.assignment.as_ref(), b"F", "its previous assignment");
        assert_eq!(describe(&a, coord, GROUP).await.group_state.as_str(), "Stable");
        // The old member id is fenced.
        assert_eq!(heartbeat(fp, coord, GROUP, 1, f.member_id.as_str(), Some(fi)).await, ResponseError::FencedInstanceId.code());
        assert_eq!(heartbeat(lp, coord, GROUP, 1, l.member_id.as_str(), Some(li)).await, 0, "the leader is undisturbed");
        // LeaveGroup by instance id alone rebalances.
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_members(vec![MemberIdentity::default().with_member_id(s("")).with_group_instance_id(Some(s(fi)))]);
        let ResponseKind::LeaveGroup(lr) = call(&restarted, coord, ApiKey::LeaveGroup, 4, RequestKind::LeaveGroup(req)).await else { panic!() };
        assert_eq!(lr.members[0].error_code, 0);
        assert_eq!(heartbeat(lp, coord, GROUP, 1, l.member_id.as_str(), Some(li)).await, ResponseError::RebalanceInProgress.code());
    })
    .await;
}

#[madsim::test]
async fn commit_then_fetch_and_a_stale_generation_is_illegal_generation() {
    on_client(|bootstrap| async move {
        let (coord, members, _) = stable_pair(&bootstrap).await;
        let (p, id) = &members[0];
        assert_eq!(commit(p, coord, GROUP, 1, id, &[("events", 0, 42), ("events", 1, 7)]).await, vec![0, 0]);
        assert_eq!(fetch_offset(p, coord, GROUP, "events", 0).await, (0, 42));
        assert_eq!(fetch_offset(p, coord, GROUP, "events", 1).await, (0, 7));
        assert_eq!(fetch_offset(p, coord, GROUP, "events", 2).await, (0, -1), "no commit: -1");
        assert_eq!(commit(p, coord, GROUP, 0, id, &[("events", 0, 50)]).await, vec![ResponseError::IllegalGeneration.code()]);
        assert_eq!(commit(p, coord, GROUP, 1, "ghost", &[("events", 0, 50)]).await, vec![ResponseError::UnknownMemberId.code()]);
        assert_eq!(fetch_offset(p, coord, GROUP, "events", 0).await, (0, 42), "refused commits change nothing");
        // KIP-709: OffsetFetch v8 batches groups; null topics = all of them.
        let req = OffsetFetchRequest::default().with_require_stable(true).with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s(GROUP))).with_topics(None),
            offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s("unknown-group"))).with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default().with_name(TopicName(s("events"))).with_partition_indexes(vec![3]),
            ])),
        ]);
        let ResponseKind::OffsetFetch(r) = call(p, coord, ApiKey::OffsetFetch, 8, RequestKind::OffsetFetch(req)).await else { panic!() };
        assert_eq!(r.groups.len(), 2);
        let all: Vec<(i32, i64)> = r.groups[0].topics[0].partitions.iter().map(|p| (p.partition_index, p.committed_offset)).collect();
        assert_eq!((r.groups[0].error_code, all), (0, vec![(0, 42), (1, 7)]));
        // "unknown-group" may live on another coordinator; if it is ours,
        // its partition has no commit.
        let g1 = &r.groups[1];
        assert!(g1.error_code == ResponseError::NotCoordinator.code() || g1.topics[0].partitions[0].committed_offset == -1);
    })
    .await;
}

#[madsim::test]
async fn standalone_commit_works_for_an_empty_group_and_fails_for_a_live_one() {
    on_client(|bootstrap| async move {
        let p = pool("standalone");
        let (_, coord) = coordinator(&p, &bootstrap, "assign-only").await;
        assert_eq!(commit(&p, coord, "assign-only", -1, "", &[("events", 0, 5)]).await, vec![0]);
        assert_eq!(fetch_offset(&p, coord, "assign-only", "events", 0).await, (0, 5));
        assert_eq!(describe(&p, coord, "assign-only").await.group_state.as_str(), "Empty");
        let (coord, members, _) = stable_pair(&bootstrap).await;
        assert_eq!(commit(&members[0].0, coord, GROUP, -1, "", &[("events", 0, 5)]).await, vec![ResponseError::UnknownMemberId.code()]);
    })
    .await;
}

#[madsim::test]
async fn brokers_that_do_not_lead_the_offsets_partition_answer_not_coordinator() {
    on_client(|bootstrap| async move {
        let p = pool("x");
        let (_, coord) = coordinator(&p, &bootstrap, GROUP).await;
        for other in bootstrap.iter().filter(|a| **a != coord) {
            let r = join(&p, *other, GROUP, "", None).await;
            assert_eq!(r.error_code, ResponseError::NotCoordinator.code());
            assert_eq!(heartbeat(&p, *other, GROUP, 1, "m", None).await, ResponseError::NotCoordinator.code());
            assert_eq!(fetch_offset(&p, *other, GROUP, "events", 0).await.0, ResponseError::NotCoordinator.code());
            assert_eq!(commit(&p, *other, GROUP, -1, "", &[("events", 0, 1)]).await, vec![ResponseError::NotCoordinator.code()]);
        }
    })
    .await;
}

// The coordinator's state lives in `__consumer_offsets`: after the
// coordinator crashes, the new leader of the group's offsets partition
// loads the group (generation, members, assignment) and its offsets.
#[madsim::test]
async fn new_coordinator_after_a_crash_serves_committed_offsets_and_the_generation() {
    let c = cluster(&[]);
    let bootstrap = c.bootstrap.clone();
    let b = bootstrap.clone();
    let (node, members) = c
        .client
        .spawn(async move {
            let (coord, members, _) = stable_pair(&b).await;
            assert_eq!(commit(&members[0].0, coord, GROUP, 1, &members[0].1, &[("events", 0, 42)]).await, vec![0]);
            let node = b.iter().position(|a| *a == coord).unwrap();
            (node, members.into_iter().map(|(_, id)| id).collect::<Vec<_>>())
        })
        .await
        .unwrap();
    c.brokers[node].crash();
    c.client
        .spawn(async move {
            let (p, new_node, coord) = coordinator_after_crash(&bootstrap, node, GROUP).await;
            assert_ne!(new_node as usize, node);
            assert_eq!(fetch_offset(&p, coord, GROUP, "events", 0).await, (0, 42));
            // Same generation and members: heartbeats of generation 1 are fine.
            for id in &members {
                assert_eq!(heartbeat(&p, coord, GROUP, 1, id, None).await, 0, "{id}");
            }
            let d = describe(&p, coord, GROUP).await;
            assert_eq!(d.group_state.as_str(), "Stable");
            assert_eq!(d.members.len(), 2);
            let sync = sync(&p, coord, GROUP, 1, &members[0], None, &[]).await;
            assert_eq!(sync.error_code, 0);
            assert!(sync.assignment.starts_with(b"for-"), "the stored assignment");
        })
        .await
        .unwrap();
}

// KIP-496: OffsetDelete writes tombstones; a reload (new coordinator)
// honours them.
#[madsim::test]
async fn offset_delete_leaves_a_tombstone_that_a_reload_honours_kip_496() {
    let c = cluster(&[]);
    let bootstrap = c.bootstrap.clone();
    let b = bootstrap.clone();
    let node = c
        .client
        .spawn(async move {
            let p = pool("admin");
            let (_, coord) = coordinator(&p, &b, "standalone").await;
            assert_eq!(commit(&p, coord, "standalone", -1, "", &[("events", 0, 10), ("events", 1, 11)]).await, vec![0, 0]);
            let req = OffsetDeleteRequest::default().with_group_id(GroupId(s("standalone"))).with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("events")))
                .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)])]);
            let ResponseKind::OffsetDelete(r) = call(&p, coord, ApiKey::OffsetDelete, 0, RequestKind::OffsetDelete(req)).await else { panic!() };
            assert_eq!(r.error_code, 0);
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
            assert_eq!(fetch_offset(&p, coord, "standalone", "events", 0).await, (0, -1));
            b.iter().position(|a| *a == coord).unwrap()
        })
        .await
        .unwrap();
    c.brokers[node].crash();
    c.client
        .spawn(async move {
            let (p, _, coord) = coordinator_after_crash(&bootstrap, node, "standalone").await;
            assert_eq!(fetch_offset(&p, coord, "standalone", "events", 0).await, (0, -1), "deleted stays deleted");
            assert_eq!(fetch_offset(&p, coord, "standalone", "events", 1).await, (0, 11));
            // DeleteGroups removes the rest; the group is gone.
            let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("standalone"))]);
            let ResponseKind::DeleteGroups(r) = call(&p, coord, ApiKey::DeleteGroups, 2, RequestKind::DeleteGroups(req)).await else { panic!() };
            assert_eq!(r.results[0].error_code, 0);
            assert_eq!(fetch_offset(&p, coord, "standalone", "events", 1).await, (0, -1));
            assert_eq!(describe(&p, coord, "standalone").await.group_state.as_str(), "Dead");
        })
        .await
        .unwrap();
}

// KIP-211: offsets of an Empty group expire `offsets.retention.minutes`
// after their commit (standalone group), checked every
// `offsets.retention.check.interval.ms`; the group is removed with
// tombstones, so a new coordinator does not bring them back.
#[madsim::test]
async fn expired_offsets_of_an_empty_group_are_removed_with_tombstones_kip_211() {
    let c = cluster(&[("offsets.retention.minutes", "1"), ("offsets.retention.check.interval.ms", "1000")]);
    let bootstrap = c.bootstrap.clone();
    let b = bootstrap.clone();
    let node = c
        .client
        .spawn(async move {
            let p = pool("admin");
            let (_, coord) = coordinator(&p, &b, "short-lived").await;
            assert_eq!(commit(&p, coord, "short-lived", -1, "", &[("events", 0, 10)]).await, vec![0]);
            tokio::time::sleep(Duration::from_secs(30)).await;
            assert_eq!(fetch_offset(&p, coord, "short-lived", "events", 0).await, (0, 10), "not expired yet");
            tokio::time::sleep(Duration::from_secs(32)).await;
            assert_eq!(fetch_offset(&p, coord, "short-lived", "events", 0).await, (0, -1), "expired");
            assert_eq!(describe(&p, coord, "short-lived").await.group_state.as_str(), "Dead", "the group is gone");
            b.iter().position(|a| *a == coord).unwrap()
        })
        .await
        .unwrap();
    c.brokers[node].crash();
    c.client
        .spawn(async move {
            let (p, _, coord) = coordinator_after_crash(&bootstrap, node, "short-lived").await;
            assert_eq!(fetch_offset(&p, coord, "short-lived", "events", 0).await, (0, -1), "tombstones honoured on reload");
        })
        .await
        .unwrap();
}

// GroupMetadataManager.storeOffsets: a commit is answered only once the
// offsets partition's high watermark covers it; when the followers are
// cut off it times out after offsets.commit.timeout.ms with
// REQUEST_TIMED_OUT, and the offset is not served.
#[madsim::test]
async fn commit_not_replicated_in_time_gets_request_timed_out() {
    let c = cluster(&[]);
    let b = c.bootstrap.clone();
    let (node, coord) = c
        .client
        .spawn(async move {
            let p = pool("admin");
            let (_, coord) = coordinator(&p, &b, "slow").await;
            assert_eq!(commit(&p, coord, "slow", -1, "", &[("events", 0, 1)]).await, vec![0]);
            (b.iter().position(|a| *a == coord).unwrap(), coord)
        })
        .await
        .unwrap();
    let net = madsim::net::NetSim::current();
    let followers: Vec<_> = (0..c.brokers.len()).filter(|i| *i != node).map(|i| c.brokers[i].node.id()).collect();
    for f in &followers {
        net.clog_node(*f);
    }
    c.client
        .spawn(async move {
            let p = pool("admin2");
            let started = tokio::time::Instant::now();
            assert_eq!(commit(&p, coord, "slow", -1, "", &[("events", 0, 2)]).await, vec![ResponseError::RequestTimedOut.code()]);
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(5_000) && waited < Duration::from_millis(6_000), "offsets.commit.timeout.ms: {waited:?}");
            assert_eq!(fetch_offset(&p, coord, "slow", "events", 0).await, (0, 1), "the timed-out commit is not served");
        })
        .await
        .unwrap();
}
