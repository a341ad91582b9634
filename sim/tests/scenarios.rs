//! Scenario files: the shipped ones load, and bad ones are rejected with
//! the file, line and field named (DESIGN.md, "Scenario file contract").

use ksim_sim::report::Verdict;
use ksim_sim::scenario::{FaultKind, PartitionShape, Probability, Scenario, ScenarioError, Target, DEFAULT_LIVENESS_MS};
use std::path::Path;

const GOOD: &str = r#"name = "t"

[cluster]
brokers = 3

[[topics]]
name = "events"
partitions = 3
replication_factor = 3

[[producers]]
topic = "events"
rate_per_s = 100

[[consumers]]
topics = ["events"]

[faults]
random = { kinds = ["crash"], every_ms = [1000, 2000] }

[[faults.at]]
at_ms = 100
kind = "crash"
target = "leader:events/0"

[run]
duration_ms = 10000
heal_ms = 5000

[expect]
verdict = "pass"
"#;

/// GOOD with the first line equal to `from` replaced by `to`.
fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

fn err(text: &str) -> ScenarioError {
    Scenario::from_str(text, "scenarios/x.toml").expect_err("must be rejected")
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

/// GOOD with `from` replaced by `to` is rejected on the line holding
/// `needle`, naming `field`.
fn rejected_at(from: &str, to: &str, needle: &str, field: &str) -> ScenarioError {
    let text = with(from, to);
    let e = err(&text);
    assert_eq!((e.line, e.field.as_deref()), (line_of(&text, needle), Some(field)), "{e}");
    e
}

#[test]
fn every_fast_scenario_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/fast");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sc.path.as_deref(), Some(path.as_path()));
            n += 1;
        }
    }
    assert!(n >= 2, "found {n} scenarios in {}", dir.display());
}

#[test]
fn acks_1_scenario_parses_into_the_expected_shape() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/fast/acks-1-leader-crash.toml");
    let sc = Scenario::load(&path).unwrap();
    assert_eq!(sc.expect.verdict, Verdict::Violation);
    assert_eq!(sc.expect.anomalies, vec!["lost-write".to_string()]);
    assert_eq!(sc.cluster.os_writeback_ms, 5000);
    assert_eq!(sc.faults.at[0].target, Target::Leader { topic: "events".into(), partition: 0 });
    assert_eq!(sc.faults.random.as_ref().unwrap().kinds, vec![FaultKind::Crash]);
    assert!(sc.expect.allow.contains(&"inconsistent-offsets".to_string()));
}

#[test]
fn defaults_fill_optional_fields() {
    let sc = Scenario::from_str(GOOD, "t.toml").unwrap();
    assert_eq!((sc.cluster.controllers, sc.cluster.log_dirs), (1, 1));
    assert_eq!(sc.producers[0].count, 1);
    assert_eq!(sc.producers[0].keys, 16);
    assert_eq!(sc.run.final_poll_ms, 20_000);
    assert!(sc.expect.allow.is_empty());
}

#[test]
fn wrong_type_names_file_line_and_field() {
    let text = with("rate_per_s = 100", "rate_per_s = \"fast\"");
    let e = err(&text);
    assert_eq!(e.line, line_of(&text, "rate_per_s"));
    assert_eq!(e.field.as_deref(), Some("rate_per_s"));
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("scenarios/x.toml:{}: field `rate_per_s`: invalid type", e.line)), "{shown}");
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let e = rejected_at("heal_ms = 5000", "heal_ms = 5000\nheal_after = 3", "heal_after", "heal_after");
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn bad_target_names_file_line_and_field() {
    let e = rejected_at("target = \"leader:events/0\"", "target = \"leader-of:events\"", "leader-of", "target");
    assert!(e.message.contains("bad target"), "{e}");
}

#[test]
fn bad_fault_kind_in_inline_table_names_its_field() {
    rejected_at("kinds = [\"crash\"]", "kinds = [\"meteor\"]", "meteor", "kinds");
}

#[test]
fn heal_after_the_end_is_rejected_at_heal_ms() {
    rejected_at("heal_ms = 5000", "heal_ms = 50000", "heal_ms", "heal_ms");
}

#[test]
fn unknown_topics_are_rejected_where_they_are_named() {
    rejected_at("topic = \"events\"", "topic = \"evnts\"", "evnts", "topic");
    rejected_at("topics = [\"events\"]", "topics = [\"events\", \"other\"]", "other", "topics");
    let text = with("leader:events/0", "leader:events/3");
    assert_eq!(err(&text).field.as_deref(), Some("target"));
}

#[test]
fn replication_factor_above_brokers_is_rejected() {
    rejected_at("replication_factor = 3", "replication_factor = 4", "replication_factor", "replication_factor");
}

#[test]
fn inverted_random_fault_interval_is_rejected() {
    rejected_at("every_ms = [1000, 2000]", "every_ms = [3000, 2000]", "every_ms", "every_ms");
}

#[test]
fn expectations_must_name_known_anomalies() {
    rejected_at("verdict = \"pass\"", "verdict = \"pass\"\nallow = [\"dupes\"]", "dupes", "allow");
    let text = with("verdict = \"pass\"", "verdict = \"violation\"");
    assert_eq!(err(&text).field.as_deref(), Some("anomalies"));
    let text = with("verdict = \"pass\"", "verdict = \"violation\"\nanomalies = [\"lost-write\"]");
    assert!(Scenario::from_str(&text, "t.toml").is_ok());
}

#[test]
fn missing_required_field_is_named() {
    let text = with("brokers = 3\n", "");
    let e = err(&text);
    assert_eq!(e.field.as_deref(), Some("brokers"));
    assert!(e.line > 0);
}

#[test]
fn unreadable_file_names_the_file() {
    let e = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/x.toml: "), "{e}");
}

/// GOOD's `[[faults.at]]` crash replaced by `fault` (kind, target, options).
fn with_fault(fault: &str) -> String {
    with("kind = \"crash\"\ntarget = \"leader:events/0\"", fault)
}

/// A fault rejected on the line holding `needle` (the `[[faults.at]]`
/// header for a missing field), naming `field`.
fn fault_rejected(fault: &str, needle: &str, field: &str) -> String {
    let text = with_fault(fault);
    let e = err(&text);
    assert_eq!((e.line, e.field.as_deref()), (line_of(&text, needle), Some(field)), "{e}");
    e.to_string()
}

#[test]
fn fault_shapes_and_options_parse() {
    let parse = |fault: &str| Scenario::from_str(&with_fault(fault), "t.toml").unwrap_or_else(|e| panic!("{e}")).faults.at[0].clone();
    let f = parse("kind = \"partition\"\ntarget = \"random\"\nshape = \"sets\"\nsides = [[\"broker:0\"], [\"broker:1\", \"producer:0\"]]");
    assert_eq!(f.shape, Some(PartitionShape::Sets));
    assert_eq!(f.sides.unwrap()[1], vec![Target::Broker(1), Target::Producer(0)]);
    assert_eq!(parse("kind = \"loss\"\ntarget = \"all-brokers\"\nrate = 0.25").rate, Some(Probability(0.25)));
    assert_eq!(parse("kind = \"clock-jump\"\ntarget = \"producer:0\"\njump_ms = -5000").jump_ms, Some(-5000));
    let f = parse("kind = \"slow-consumer\"\ntarget = \"consumer:0\"\nprocess_ms = 900");
    assert_eq!((f.target, f.process_ms), (Target::AssignConsumer(0), Some(900)));
    assert_eq!(parse("kind = \"latency\"\ntarget = \"all-brokers\"\nlatency_ms = [10, 50]").latency_ms, Some([10, 50]));
    // Files without the new fields keep parsing: buggify off, default liveness bound.
    let sc = Scenario::from_str(GOOD, "t.toml").unwrap();
    assert!(!sc.faults.buggify && !sc.faults.random.as_ref().unwrap().swarm);
    assert_eq!(sc.run.liveness_ms, DEFAULT_LIVENESS_MS);
}

#[test]
fn fault_option_errors_name_file_line_and_field() {
    let cases = [
        ("kind = \"crash\"\ntarget = \"broker:0\"\nshape = \"bridge\"", "shape =", "shape", "applies to kind = \"partition\" only"),
        ("kind = \"partition\"\ntarget = \"random\"\nshape = \"sets\"", "[[faults.at]]", "sides", "needs sides"),
        ("kind = \"partition\"\ntarget = \"random\"\nshape = \"diagonal\"", "diagonal", "shape", "unknown variant"),
        ("kind = \"loss\"\ntarget = \"random\"\nrate = 1.5", "rate =", "rate", "(0, 1]"),
        ("kind = \"latency\"\ntarget = \"random\"\nlatency_ms = [500, 10]", "latency_ms", "latency_ms", "lo <= hi"),
        ("kind = \"clock-jump\"\ntarget = \"producer:0\"", "[[faults.at]]", "jump_ms", "needs jump_ms"),
        ("kind = \"crash\"\ntarget = \"consumer:g1/0\"", "consumer:g1/0", "target", "no [[consumers]] entry has group = \"g1\""),
        ("kind = \"crash\"\ntarget = \"producer:1\"", "producer:1", "target", "1 producer process"),
        ("kind = \"crash\"\ntarget = \"broker:3\"", "broker:3", "target", "3 broker(s)"),
        ("kind = \"disk-eio\"\ntarget = \"producer:0\"", "producer:0", "target", "is a client"),
        ("kind = \"slow-consumer\"\ntarget = \"broker:0\"", "broker:0", "target", "targets a consumer"),
        ("kind = \"clock-jump\"\ntarget = \"broker:0\"\njump_ms = 5", "broker:0", "target", "targets a client"),
        (
            "kind = \"partition\"\ntarget = \"random\"\nshape = \"one-way\"\nsides = [[\"broker:1\"], [\"leader:nope/0\"]]",
            "sides",
            "sides",
            "unknown topic",
        ),
    ];
    for (fault, needle, field, message) in cases {
        let e = fault_rejected(fault, needle, field);
        assert!(e.contains(message), "{fault}: {e}");
    }
}

/// `coordinator:GROUP` is accepted when the cluster can hold the offsets
/// topic (offsets.topic.replication.factor brokers, default 3) and rejected
/// with the field named when it cannot.
#[test]
fn coordinator_target_needs_offsets_topic_replication_factor_brokers() {
    let fault = "kind = \"crash\"\ntarget = \"coordinator:g1\"";
    let ok = Scenario::from_str(&with_fault(fault), "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.faults.at[0].target, Target::Coordinator("g1".into()));
    let text = with_fault(fault).replacen("brokers = 3", "brokers = 3\nconfig = { \"offsets.topic.replication.factor\" = 5 }", 1);
    let e = err(&text);
    assert_eq!((e.line, e.field.as_deref()), (line_of(&text, "coordinator:g1"), Some("target")), "{e}");
    assert!(e.to_string().contains("needs 5 brokers"), "{e}");
}

/// `consumer:GROUP/N` names the Nth member process of GROUP, counted over
/// every `[[consumers]]` entry with that group; `consumer:N` keeps counting
/// assign-mode consumers only.
#[test]
fn consumer_group_targets_name_member_processes() {
    let groups = "[[consumers]]\ngroup = \"g1\"\ncount = 2\ntopics = [\"events\"]\n\n\
                  [[consumers]]\ngroup = \"g1\"\ntopics = [\"events\"]\ncommit = \"async\"\n\n\
                  [[consumers]]\ntopics = [\"events\"]\n";
    let text = |fault: &str| with_fault(fault).replacen("[[consumers]]\ntopics = [\"events\"]\n", groups, 1);
    let sc = Scenario::from_str(&text("kind = \"pause\"\ntarget = \"consumer:g1/2\""), "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.faults.at[0].target, Target::Consumer { group: "g1".into(), index: 2 });
    let counts = ksim_sim::scenario::ClientCounts::of(&sc);
    assert_eq!(
        counts.consumers,
        vec![
            Target::Consumer { group: "g1".into(), index: 0 },
            Target::Consumer { group: "g1".into(), index: 1 },
            Target::Consumer { group: "g1".into(), index: 2 },
            Target::AssignConsumer(0),
        ]
    );
    for (target, message) in [
        ("consumer:g1/3", "group `g1` has 3 consumer process(es)"),
        ("consumer:g2/0", "no [[consumers]] entry has group = \"g2\""),
        ("consumer:1", "1 assign-mode consumer process"),
    ] {
        let t = text(&format!("kind = \"crash\"\ntarget = \"{target}\""));
        let e = err(&t);
        assert_eq!((e.line, e.field.as_deref()), (line_of(&t, target), Some("target")), "{e}");
        assert!(e.message.contains(message), "{target}: {e}");
    }
    // Transactional commits need transactions.
    let t = text("kind = \"crash\"\ntarget = \"broker:0\"").replacen("commit = \"async\"", "commit = \"txn\"", 1);
    let e = err(&t);
    assert_eq!((e.line, e.field.as_deref()), (line_of(&t, "commit = \"txn\""), Some("commit")), "{e}");
}

#[test]
fn random_client_kinds_need_such_clients() {
    let text = with("kinds = [\"crash\"]", "kinds = [\"clock-jump\"]")
        .replace("[[producers]]\ntopic = \"events\"\nrate_per_s = 100\n", "")
        .replace("[[consumers]]\ntopics = [\"events\"]\n", "");
    let e = err(&text);
    assert_eq!((e.line, e.field.as_deref()), (line_of(&text, "clock-jump"), Some("kinds")), "{e}");
    assert!(e.message.contains("needs a producer or a consumer"), "{e}");
    // A consumer alone is enough: it reads a wall clock too.
    let consumer_only = with("kinds = [\"crash\"]", "kinds = [\"clock-jump\"]")
        .replace("[[producers]]\ntopic = \"events\"\nrate_per_s = 100\n", "");
    Scenario::from_str(&consumer_only, "t.toml").unwrap_or_else(|e| panic!("{e}"));
}

/// `shapes` and `client_crashes` of `[faults] random` fit its kinds and the
/// scenario, or the error names the line and field.
#[test]
fn random_shapes_and_client_crashes_are_checked() {
    let random = "random = { kinds = [\"crash\"], every_ms = [1000, 2000] }";
    let ok = with(random, "random = { kinds = [\"crash\", \"partition\"], every_ms = [1000, 2000], shapes = [\"sets\", \"bridge\"], client_crashes = 0.25 }");
    let sc = Scenario::from_str(&ok, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let r = sc.faults.random.as_ref().unwrap();
    assert_eq!(r.shapes, vec![PartitionShape::Sets, PartitionShape::Bridge]);
    assert_eq!(r.client_crashes, Some(Probability(0.25)));
    let cases = [
        ("shapes = [\"one-way\"]", "shapes", "add \"partition\" to kinds"),
        ("client_crashes = 1.5", "client_crashes", "(0, 1]"),
    ];
    for (option, field, message) in cases {
        let text = with(random, &format!("random = {{ kinds = [\"crash\"], every_ms = [1000, 2000], {option} }}"));
        let e = err(&text);
        assert_eq!((e.line, e.field.as_deref()), (line_of(&text, option), Some(field)), "{e}");
        assert!(e.message.contains(message), "{e}");
    }
    let pause_only = with(random, "random = { kinds = [\"pause\"], every_ms = [1000, 2000], client_crashes = 0.5 }");
    assert!(err(&pause_only).message.contains("crash and restart"), "{}", err(&pause_only));
    let one_broker = with(random, "random = { kinds = [\"partition\"], every_ms = [1000, 2000], shapes = [\"sets\"] }")
        .replace("brokers = 3", "brokers = 1")
        .replace("replication_factor = 3", "replication_factor = 1")
        .replace("target = \"leader:events/0\"", "target = \"broker:0\"");
    assert!(err(&one_broker).message.contains("at least 2 brokers"), "{}", err(&one_broker));
}
