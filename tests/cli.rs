//! The `ksim` binary's exit codes and messages (DESIGN.md, "CLI contract").

use std::path::PathBuf;
use std::process::{Command, Output};

fn ksim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksim")).args(args).output().expect("ksim runs")
}

fn tmp_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const SEND_OK_0: &str = r#"{"process":1,"f":"send","type":"ok","t_ms":10,"value":[["send","events/0",1,0]]}"#;
const SEND_OK_1: &str = r#"{"process":1,"f":"send","type":"ok","t_ms":11,"value":[["send","events/0",2,1]]}"#;
const SEND_OK_2: &str = r#"{"process":1,"f":"send","type":"ok","t_ms":12,"value":[["send","events/0",3,2]]}"#;

#[test]
fn bad_scenario_file_exits_2_naming_file_line_and_field() {
    let path = tmp_file(
        "cli-bad-scenario.toml",
        "name = \"x\"\n\n[cluster]\nbrokers = \"three\"\n",
    );
    let out = ksim(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4: field `brokers`", path.display())), "{err}");
}

#[test]
fn bad_seed_range_exits_2() {
    let out = ksim(&["run", "scenarios/fast/acks-all-leader-crash.toml", "--seeds", "5..2"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_exits_1_on_a_lost_write() {
    // Value 2 acknowledged at offset 1; the reader read offsets 0 and 2 only.
    let poll = r#"{"process":2,"f":"poll","type":"ok","t_ms":20,"value":[["poll","events/0",[[0,1],[2,3]]]]}"#;
    let path = tmp_file("cli-lost.jsonl", &[SEND_OK_0, SEND_OK_1, SEND_OK_2, poll].join("\n"));
    let out = ksim(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lost-write=1"), "{text}");
}

#[test]
fn check_exits_0_on_a_clean_history() {
    let poll = r#"{"process":2,"f":"poll","type":"ok","t_ms":20,"value":[["poll","events/0",[[0,1],[1,2],[2,3]]]]}"#;
    let path = tmp_file("cli-clean.jsonl", &[SEND_OK_0, SEND_OK_1, SEND_OK_2, poll].join("\n"));
    let out = ksim(&["check", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["anomalies"]["lost-write"], 0);
}

#[test]
fn check_exits_2_on_a_malformed_history() {
    let path = tmp_file("cli-malformed.jsonl", &format!("{SEND_OK_0}\n{{not json\n"));
    let out = ksim(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}

#[test]
fn serve_is_not_implemented_yet_and_shrink_rejects_bad_usage() {
    assert_eq!(ksim(&["serve"]).status.code(), Some(2));
    assert_eq!(ksim(&["shrink", "x.toml", "--seed", "1"]).status.code(), Some(2), "missing scenario file");
    let sc = "scenarios/slow/acks-1-random-faults.toml";
    assert_eq!(ksim(&["shrink", sc, "--seed", "1", "--max-runs", "1"]).status.code(), Some(2));
    assert_eq!(ksim(&["shrink", sc, "--seed", "1", "--anomaly", "nope"]).status.code(), Some(2));
}

/// `ksim shrink` writes a scenario whose header carries the replay command,
/// prints progress on stderr, and `ksim replay FILE --seed N` shows the
/// anomaly again; a seed without the anomaly exits 1.
#[test]
fn shrink_writes_a_scenario_that_replays_the_anomaly() {
    let sc = "scenarios/slow/acks-1-random-faults.toml";
    let sweep = json_lines(&ksim(&["run", sc, "--seeds", "0..12", "--format", "json"]));
    let losing = sweep.iter().find(|o| o["anomalies"]["lost-write"].as_u64() > Some(0)).expect("a seed loses a write");
    let seed = losing["seed"].as_u64().unwrap().to_string();
    let out_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-shrunk.toml");
    let out_arg = out_path.to_str().unwrap();
    let out = ksim(&["shrink", sc, "--seed", &seed, "--max-runs", "12", "--anomaly", "lost-write", "--out", out_arg]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("shrink: run 12/12"), "{stderr}");
    let replay = format!("ksim replay {} --seed {seed}", out_path.display());
    assert!(stdout.contains(&replay), "{stdout}");
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(text.contains(&format!("# replay:  {replay}")), "{text}");
    let again = ksim(&["replay", out_arg, "--seed", &seed, "--format", "json"]);
    assert!(json_lines(&again)[0]["anomalies"]["lost-write"].as_u64() > Some(0), "{}", String::from_utf8_lossy(&again.stdout));

    // A safe scenario's seed loses nothing: no lost-write to shrink.
    let out = ksim(&["shrink", "scenarios/fast/rf-above-min-isr.toml", "--seed", "0", "--anomaly", "lost-write", "--out", out_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not show `lost-write`"));
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

/// DESIGN.md: same binary + scenario + seed ⇒ the same trace hash, across
/// processes too (a per-process random HashMap seed would break this).
#[test]
fn replay_in_a_new_process_reproduces_the_trace_hash() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/fast/acks-1-leader-crash.toml");
    // Seeds 0 and 1 both lose a write (the sweep meets its expectation).
    let run = ksim(&["run", scenario, "--seeds", "0..2", "--format", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let swept = json_lines(&run);
    assert_eq!(swept.last().unwrap()["summary"], true);
    for seed in [0u64, 1] {
        let replay = ksim(&["replay", scenario, "--seed", &seed.to_string(), "--format", "json"]);
        let one = json_lines(&replay);
        let from_sweep = swept.iter().find(|o| o["seed"] == seed).expect("seed in sweep");
        assert_eq!(one[0]["trace_hash"], from_sweep["trace_hash"], "seed {seed}");
        assert_eq!(one[0]["anomalies"], from_sweep["anomalies"], "seed {seed}");
    }
}

/// A sweep that does not meet its expectation exits 1 and prints the
/// one-line replay command for each failing seed.
#[test]
fn unmet_expectation_exits_1_with_a_replay_command() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/fast/acks-1-leader-crash.toml")).unwrap();
    // The acks=1 scenario claimed safe: seeds that lose writes are failures.
    let claimed_safe = src.replace("verdict = \"violation\"", "verdict = \"pass\"").replace("anomalies = [\"lost-write\"]\n", "");
    let path = tmp_file("cli-acks-1-claimed-safe.toml", &claimed_safe);
    let out = ksim(&["run", path.to_str().unwrap(), "--seeds", "0..3"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    // Which seeds lose writes depends on the whole simulation (it changed
    // when the controller became a Raft quorum): check every unmet one.
    let unmet: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("UNMET"))
        .map(|l| l.trim_start_matches("seed ").split(':').next().unwrap())
        .collect();
    assert!(!unmet.is_empty(), "{text}");
    for seed in unmet {
        assert!(text.contains(&format!("ksim replay {} --seed {seed}\n", path.display())), "{text}");
    }
}

const FAST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/fast/acks-all-leader-crash.toml");

fn swept_seeds(out: &Output) -> Vec<u64> {
    json_lines(out).iter().filter_map(|o| o["seed"].as_u64()).collect()
}

/// `--shard K/N` splits a range by position: 1/2 and 2/2 of 0..4 together
/// run each seed of 0..4 exactly once, and the summary names the shard.
#[test]
fn shards_together_cover_the_range_exactly_once() {
    let mut all = Vec::new();
    for shard in ["1/2", "2/2"] {
        let out = ksim(&["run", FAST, "--seeds", "0..4", "--shard", shard, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(json_lines(&out).last().unwrap()["shard"], shard);
        all.extend(swept_seeds(&out));
    }
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);
}

#[test]
fn bad_shard_exits_2_with_a_message() {
    for bad in ["3/2", "0/2", "2", "a/b"] {
        let out = ksim(&["run", FAST, "--seeds", "0..4", "--shard", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("expected K/N"), "{bad}");
    }
}

#[test]
fn check_determinism_passes_on_a_fast_scenario() {
    let out = ksim(&["run", FAST, "--seeds", "0..4", "--check-determinism", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_lines(&out).last().unwrap()["determinism"], "passed");
}

/// `--out` writes the CI files: a Markdown summary and JUnit XML with one
/// testcase per seed (besides the histories and results.jsonl).
#[test]
fn out_writes_summary_md_and_junit_xml() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-out");
    let _ = std::fs::remove_dir_all(&dir);
    let out = ksim(&["run", FAST, "--seeds", "0..3", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("| seed | verdict |") && md.contains("`0..3`"), "{md}");
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    for seed in 0..3 {
        assert!(xml.contains(&format!("<testcase name=\"seed-{seed}\"")), "{xml}");
    }
    assert!(!xml.contains("<failure"), "{xml}");
    assert_eq!(std::fs::read_to_string(dir.join("results.jsonl")).unwrap().lines().count(), 3);
}

/// `ksim check` runs the whole catalogue on a stored history: the crafted
/// tests/histories/anomalies.jsonl holds one each of seven anomalies (a
/// failed send read, a reordered producer, a per-key reorder, a write cycle
/// between two transactions, a partition owned twice in one generation, a
/// commit past the consumer's position, a hanging transaction) and nothing
/// else.
#[test]
fn check_runs_the_whole_catalogue_on_a_crafted_history() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/histories/anomalies.jsonl");
    let out = ksim(&["check", path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: std::collections::BTreeMap<String, u64> = v["anomalies"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect();
    let expected: std::collections::BTreeMap<String, u64> = [
        "aborted-read",
        "committed-ahead",
        "g0",
        "hanging-txn",
        "key-order",
        "nonmonotonic-send",
        "ownership",
    ]
    .iter()
    .map(|k| (k.to_string(), 1))
    .collect();
    assert_eq!(found, expected);
    assert!(v["anomalies"].as_object().unwrap().len() >= 25, "every catalogue key is listed");
    let text = String::from_utf8_lossy(&ksim(&["check", path]).stdout).to_string();
    assert!(text.contains("g0 events/") && text.contains("write cycle over 2 ops"), "{text}");
}

/// `ksim bench` with tiny sizes, so the subcommand cannot rot: it prints
/// the scenario's speed and the checkers' throughput.
#[test]
fn bench_prints_simulation_speed_and_checker_throughput() {
    let out = ksim(&["bench", "--scenario", FAST, "--seeds", "0..2", "--ops", "10000", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scenario"]["seeds"], 2);
    assert!(v["scenario"]["sim_to_wall"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["checkers"]["ops"].as_u64().unwrap() >= 10_000, "{v}");
    assert_eq!(v["checkers"]["anomalies"], 0, "the generated history is clean");
    let text = ksim(&["bench", "--scenario", FAST, "--seeds", "0..1", "--ops", "1000"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("seeds/min") && text.contains("ops/s"), "{text}");
}

/// The files of a kept seed's directory.
use ksim_sim::seed_report::SEED_FILES;

/// `--keep all` writes every seed's report directory, and `ksim check` on
/// its history (with the observations beside it) re-judges the seed: the
/// same anomaly counts as the run, broker-side keys included.
#[test]
fn out_keep_all_writes_every_report_file_and_check_rejudges_the_seed() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-out-keep-all");
    let _ = std::fs::remove_dir_all(&dir);
    let out = ksim(&["run", FAST, "--seeds", "0..1", "--out", dir.to_str().unwrap(), "--keep", "all"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let seed = dir.join("seed-0");
    for f in SEED_FILES {
        let len = std::fs::metadata(seed.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("[timeline](seed-0/timeline.html)"), "{md}");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(seed.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["replay"], format!("ksim replay {FAST} --seed 0"));
    let faults = std::fs::read_to_string(seed.join("faults.jsonl")).unwrap();
    assert!(faults.lines().any(|l| l.contains("\"target\":\"leader:events/")), "{faults}");

    let check = ksim(&["check", seed.join("history.jsonl").to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).expect("check prints JSON");
    assert!(v["observations"].as_str().unwrap().ends_with("observations.jsonl"), "{v}");
    let mut run_counts = results["anomalies"].as_object().unwrap().clone();
    // Liveness is a run-level fact, not in the history or observations.
    run_counts.remove("liveness");
    let mut check_counts = v["anomalies"].as_object().unwrap().clone();
    check_counts.remove("liveness");
    assert_eq!(check_counts, run_counts);
    let any = run_counts.values().any(|n| n.as_u64() != Some(0));
    assert_eq!(check.status.code(), Some(i32::from(any)));
}

#[test]
fn bad_keep_policy_exits_2() {
    let out = ksim(&["run", FAST, "--seeds", "0..1", "--keep", "some"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected none, unmet, anomalous or all"));
}

/// Broker-side checkers run on stored observations: a follower whose HW
/// goes back in one process lifetime is an hw-regression, found from
/// `--observations FILE` and from an observations.jsonl beside the history.
#[test]
fn check_runs_broker_side_checkers_on_stored_observations() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-check-observations");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let poll = r#"{"process":2,"f":"poll","type":"ok","t_ms":20,"value":[["poll","events/0",[[0,1],[1,2],[2,3]]]]}"#;
    let history = dir.join("history.jsonl");
    std::fs::write(&history, [SEND_OK_0, SEND_OK_1, SEND_OK_2, poll].join("\n")).unwrap();
    let hw = |t: u64, v: i64| {
        format!(r#"{{"t_ms":{t},"broker":1,"incarnation":1,"topic":"events","partition":0,"event":{{"kind":"hw","value":{v}}}}}"#)
    };
    let obs = dir.join("elsewhere.jsonl");
    std::fs::write(&obs, [hw(5, 3), hw(9, 1)].join("\n")).unwrap();

    let alone = ksim(&["check", history.to_str().unwrap()]);
    assert_eq!(alone.status.code(), Some(0), "{}", String::from_utf8_lossy(&alone.stdout));
    assert!(String::from_utf8_lossy(&alone.stdout).contains("broker-side checkers counted 0"));

    let given = ksim(&["check", history.to_str().unwrap(), "--observations", obs.to_str().unwrap()]);
    assert_eq!(given.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&given.stdout).contains("hw-regression=1"));

    std::fs::rename(&obs, dir.join("observations.jsonl")).unwrap();
    let beside = ksim(&["check", history.to_str().unwrap(), "--format", "json"]);
    assert_eq!(beside.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&beside.stdout).unwrap();
    assert_eq!(v["anomalies"]["hw-regression"], 1);

    std::fs::write(dir.join("observations.jsonl"), "{not json\n").unwrap();
    let bad = ksim(&["check", history.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("observations.jsonl: line 1"));
}
