//! A bounded, stable-toolchain fuzzer for the parsers hostile input reaches: the webhook
//! payload (and the checks `control::push` applies), the manifest loader (YAML + locator +
//! validation), the task definition parser and checks, and the Discord interaction parser.
//!
//! Each target starts from real inputs (the repository's manifests and task definitions,
//! payloads shaped like GitHub's and Discord's docs) and mutates them with a fixed, printed
//! seed: bit flips, insertions and deletions, duplicated chunks, and YAML/JSON tokens that
//! grow nesting and numbers. A panic fails the test and saves the input under
//! `target/fuzz-failures/` so it can become a regression test. CI runs each target for
//! `GANTRY_FUZZ_SECONDS` (default 3); longer runs: `GANTRY_FUZZ_SECONDS=600 GANTRY_FUZZ_SEED=N
//! cargo test --test it fuzz:: -- --nocapture` (see docs/security.md).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

/// Tokens worth splicing in: structure, nesting, anchors, odd numbers and text.
const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"- ",
    b"\n",
    b"\n  ",
    b": ",
    b"\"",
    b"'",
    b"&a ",
    b"*a",
    b"!!str ",
    b"---\n",
    b"...",
    b"18446744073709552s",
    b"-1",
    b"1e999",
    b"\\u0000",
    b"\xff",
    b"\0",
    b"#",
    b"--upload-pack=x",
    b"refs/heads/",
    b"<<: *a",
    b"?",
    b"|\n",
    b">-\n",
    b"null",
    b"true",
];

fn seconds() -> Duration {
    let s = std::env::var("GANTRY_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

fn seed() -> u64 {
    std::env::var("GANTRY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6a6e7472)
}

fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>) {
    for _ in 0..rng.usize(1..=4) {
        let len = input.len();
        match rng.u8(0..6) {
            0 if len > 0 => {
                let i = rng.usize(0..len);
                input[i] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let i = rng.usize(0..=len);
                input.insert(i, rng.u8(..));
            }
            2 if len > 0 => {
                let i = rng.usize(0..len);
                let n = rng.usize(1..=(len - i).min(16));
                input.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.usize(0..len);
                let n = rng.usize(1..=(len - i).min(64));
                let chunk = input[i..i + n].to_vec();
                let at = rng.usize(0..=input.len());
                for _ in 0..rng.usize(1..=8) {
                    input.splice(at..at, chunk.iter().copied());
                }
            }
            _ => {
                let t = TOKENS[rng.usize(0..TOKENS.len())];
                let at = rng.usize(0..=len);
                let times = if rng.u8(0..8) == 0 {
                    rng.usize(1..200)
                } else {
                    1
                };
                for _ in 0..times {
                    input.splice(at..at, t.iter().copied());
                }
            }
        }
    }
    // Keep inputs in the range the daemon accepts at all.
    input.truncate(256 * 1024);
}

/// Runs `target` on mutations of `corpus` for the configured time; returns executions.
fn fuzz(name: &str, corpus: Vec<Vec<u8>>, target: impl Fn(&[u8])) -> u64 {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let deadline = Instant::now() + seconds();
    let mut runs = 0u64;
    let mut pool = corpus;
    while Instant::now() < deadline {
        let mut input = pool[rng.usize(0..pool.len())].clone();
        mutate(&mut rng, &mut input);
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{seed}-{runs}.bin"));
            std::fs::write(&file, &input).unwrap();
            panic!("{name}: input {} panicked (seed {seed})", file.display());
        }
        runs += 1;
        // Inputs that got through stay as seeds, so mutations build on each other.
        if rng.u8(0..16) == 0 && pool.len() < 512 {
            pool.push(input);
        }
    }
    println!(
        "fuzz {name}: {runs} executions in {:?} (seed {seed})",
        seconds()
    );
    assert!(runs > 0);
    runs
}

fn repo_files(ext: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    assert!(!out.is_empty(), "no .{ext} seeds under manifests/");
    out
}

#[test]
fn fuzz_the_manifest_loader() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    fuzz("manifest", repo_files("yaml"), |input| {
        let text = String::from_utf8_lossy(input);
        let _ = gantry::manifests::parse_file(&file, &text);
    });
}

#[test]
fn fuzz_the_task_definition_parser() {
    fuzz("taskdef", repo_files("json"), |input| {
        let text = String::from_utf8_lossy(input);
        if let Ok(td) = gantry::domain::taskdef::TaskDefinition::from_json(&text) {
            let _ = gantry::plan::taskdef_check::check(&td, &[]);
            let _ = td.is_fargate();
        }
    });
}

#[test]
fn fuzz_the_webhook_payload_parser() {
    let seeds = vec![
        crate::support::push_body("acme/web", "refs/heads/main", &"a".repeat(40)),
        crate::support::push_body("acme/web", "refs/tags/v1.2.3", &"0".repeat(40)),
    ];
    fuzz("webhook", seeds, |input| {
        if let Ok(push) = serde_json::from_slice::<gantry::domain::PushEvent>(input) {
            let _ = gantry::domain::git::commit_sha(&push.after);
            let _ = gantry::domain::git::valid_ref_name(&push.git_ref);
            let _ = push.actor();
            let apps = [gantry::manifests::scaffold_app("web", "acme/web", "main")];
            let _ = gantry::plan::intake::plan_push(apps.iter(), &push);
        }
    });
}

#[test]
fn fuzz_the_discord_interaction_parser() {
    let command = serde_json::json!({
        "type": 2, "id": "786008729715212338", "token": "t",
        "member": {"user": {"id": "7", "username": "mason"}, "roles": ["1"]},
        "data": {"name": "deploy", "options": [{"type": 3, "name": "app", "value": "web"}, {"type": 3, "name": "ref", "value": "main"}]}
    });
    let button = serde_json::json!({
        "type": 3, "id": "786008729715212339", "token": "t",
        "user": {"id": "7"},
        "data": {"custom_id": "gantry:confirm:1796198675:deploy:web:main", "component_type": 2}
    });
    let seeds = vec![
        serde_json::to_vec(&command).unwrap(),
        serde_json::to_vec(&button).unwrap(),
    ];
    fuzz("interaction", seeds, |input| {
        let _ = gantry::http::discord::parse_interaction(input, 1796198675);
    });
}
