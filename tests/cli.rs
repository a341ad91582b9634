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
fn shrink_and_serve_are_not_implemented_yet() {
    assert_eq!(ksim(&["serve"]).status.code(), Some(2));
    assert_eq!(ksim(&["shrink", "x.toml", "--seed", "1"]).status.code(), Some(2));
}
