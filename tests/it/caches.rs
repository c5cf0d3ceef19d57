//! Build caches between an app's deployments: restored before the build's commands, saved
//! after they succeed, keyed by lock files, bounded with eviction, and never put in or
//! taken from outside the workspace, whatever the repository commits.

use crate::support::*;

/// Isolation as production runs it: the sandbox where this machine can make one.
fn isolation() -> &'static str {
    use gantry::adapters::process::Isolation;
    if Isolation::detect() == Isolation::None {
        "none"
    } else {
        "bubblewrap"
    }
}

fn manifest(repo: &GitRepo, build: &[&str], caches: &str) -> String {
    let mut m = app_manifest("web", "acme/web", &repo.path, "main", build);
    m.push_str("    caches:\n");
    m.push_str(caches);
    m
}

#[tokio::test]
async fn a_cache_is_restored_by_its_key_and_from_an_older_key_when_the_lock_file_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let first = repo.commit(
        &[("package-lock.json", "{\"v\": 1}"), ("index.html", "one")],
        "first",
    );
    let build = [
        "mkdir -p ~/.npm .next/cache",
        "echo \"npm restore: $GANTRY_CACHE_NPM\"",
        "echo \"npm runs: $(cat ~/.npm/runs 2>/dev/null | wc -l)\"; echo $GANTRY_SHA >> ~/.npm/runs",
        "echo \"next: $(cat .next/cache/last 2>/dev/null || echo none)\"; echo $GANTRY_SHA > .next/cache/last",
        "test ! -f FAIL",
    ];
    let caches = "      - path: ~/.npm\n        key: [package-lock.json]\n      - path: .next/cache\n        key: [package-lock.json]\n";
    let app = TestApp::start_with(
        &[("web.yaml", manifest(&repo, &build, caches))],
        &[("GANTRY_BUILD_ISOLATION", isolation())],
    )
    .await;

    let d = app.push_and_wait("cache-1", "acme/web", &first).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "build");
    assert!(log.contains("cache npm (~/.npm): miss (key "), "{log}");
    assert!(log.contains("npm restore: miss"), "{log}");
    assert!(
        log.contains("cache next-cache (.next/cache): miss"),
        "{log}"
    );
    assert!(
        log.contains("npm runs: 0") && log.contains("next: none"),
        "{log}"
    );
    assert!(log.contains("cache npm (~/.npm): saved "), "{log}");
    assert!(
        step(&d, "build")["outcome"]
            .as_str()
            .unwrap()
            .contains("caches: npm miss, next-cache miss"),
        "{d:#}"
    );

    // One page changed, the lock file not: both caches come back exactly.
    let second = repo.commit(&[("index.html", "two")], "one page");
    let d = app.push_and_wait("cache-2", "acme/web", &second).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "build");
    assert!(log.contains("cache npm (~/.npm): restored (key "), "{log}");
    assert!(log.contains("npm restore: hit"), "{log}");
    assert!(log.contains("npm runs: 1"), "{log}");
    assert!(log.contains(&format!("next: {first}")), "{log}");

    // The lock file changed: the newest entry is the starting point, saved under the new key.
    let third = repo.commit(&[("package-lock.json", "{\"v\": 2}")], "deps");
    let d = app.push_and_wait("cache-3", "acme/web", &third).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "build");
    assert!(
        log.contains("cache npm (~/.npm): restored from an older key (the key files changed"),
        "{log}"
    );
    assert!(log.contains("npm restore: older"), "{log}");
    assert!(log.contains("npm runs: 2"), "{log}");

    // A failed build saves nothing, and what it wrote into its copy does not reach the
    // store: the next build starts from what the last good one left.
    let fourth = repo.commit(&[("FAIL", "")], "breaks the build");
    let d = app.push_and_wait("cache-4", "acme/web", &fourth).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    assert!(!step_log(&d, "build").contains("saved"), "{d:#}");
    git(&repo.path, &["rm", "-q", "FAIL"]);
    let fifth = repo.commit(&[], "fixed");
    let d = app.push_and_wait("cache-5", "acme/web", &fifth).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "build");
    assert!(log.contains("npm runs: 3"), "{log}");
    assert!(log.contains(&format!("next: {third}")), "{log}");
    app.finish().await;
}

#[tokio::test]
async fn caches_are_bounded_and_the_least_recently_saved_goes_first() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("README", "x")], "first");
    let build = [
        "mkdir -p a b big && head -c 600 /dev/zero > a/f && head -c 600 /dev/zero > b/f",
        "head -c 5000 /dev/zero > big/f",
    ];
    let caches = "      - path: a\n      - path: b\n      - path: big\n";
    let app = TestApp::start_with(
        &[("web.yaml", manifest(&repo, &build, caches))],
        &[
            ("GANTRY_BUILD_ISOLATION", isolation()),
            ("GANTRY_CACHE_SIZE", "1 KiB"),
        ],
    )
    .await;
    let d = app.push_and_wait("bound-1", "acme/web", &sha).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "build");
    // `a` fits; `b` fits only once `a` is evicted; `big` is larger than the whole store.
    assert!(log.contains("cache a (a): saved 600 B"), "{log}");
    assert!(
        log.contains("cache b (b): saved 600 B in 1 files")
            && log.contains("evicted 1 older entry (600 B) to stay within 1.0 KiB"),
        "{log}"
    );
    assert!(
        log.contains("cache big (big): not saved: src/big is larger than the whole cache"),
        "{log}"
    );
    let sha = repo.commit(&[("README", "y")], "second");
    let d = app.push_and_wait("bound-2", "acme/web", &sha).await;
    let log = step_log(&d, "build");
    assert!(log.contains("cache a (a): miss"), "{log}");
    assert!(log.contains("cache b (b): restored (key"), "{log}");
    app.finish().await;
}

/// A repository that commits `.next` as a symlink out of the checkout, or a build that
/// replaces the cache directory with one, gets no cache put there or read from there.
#[tokio::test]
async fn a_symlinked_cache_directory_is_neither_restored_through_nor_saved_from() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("secret-dir")).unwrap();
    std::fs::write(outside.join("secret-dir/key.pem"), "c4n4ry-outside-file").unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let first = repo.commit(&[("index.html", "one")], "first");
    let swap = format!(
        "if [ -f SWAP ]; then rm -rf .next/cache && ln -s {} .next/cache; fi",
        outside.join("secret-dir").display()
    );
    let build = [
        "[ -L .next ] || { mkdir -p .next/cache && echo built > .next/cache/f; }",
        swap.as_str(),
    ];
    let caches = "      - path: .next/cache\n";
    let app = TestApp::start_with(
        &[("web.yaml", manifest(&repo, &build, caches))],
        &[("GANTRY_BUILD_ISOLATION", isolation())],
    )
    .await;
    let d = app.push_and_wait("link-1", "acme/web", &first).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert!(step_log(&d, "build").contains("saved 6 B"), "{d:#}");

    // The next commit makes `.next` a symlink out of the checkout.
    std::os::unix::fs::symlink(&outside, repo.path.join(".next")).unwrap();
    let second = repo.commit(&[], "hostile link");
    let d = app.push_and_wait("link-2", "acme/web", &second).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "build");
    assert!(
        log.contains(
            "cache next-cache (.next/cache): not restored: `src/.next` is a symlink or a file"
        ),
        "{log}"
    );
    assert!(!outside.join("cache").exists(), "nothing put outside");

    // A build that swaps the cache for a symlink to a secret: not saved.
    std::fs::remove_file(repo.path.join(".next")).unwrap();
    let third = repo.commit(&[("SWAP", "")], "swap");
    let d = app.push_and_wait("link-3", "acme/web", &third).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "build");
    assert!(log.contains("restored (key"), "{log}");
    assert!(
        log.contains("not saved: `src/.next/cache` is not a directory"),
        "{log}"
    );
    let stored = std::process::Command::new("grep")
        .args(["-r", "-l", "c4n4ry-outside-file"])
        .arg(app.dir.path().join("data/cache"))
        .output()
        .unwrap();
    assert!(stored.stdout.is_empty(), "the secret is not in the store");
    app.finish().await;
}

#[tokio::test]
async fn hostile_cache_declarations_are_refused_with_their_field() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    repo.commit(&[("README", "x")], "first");
    let mdir = tmp.path().join("manifests");
    std::fs::create_dir_all(&mdir).unwrap();
    let caches = "      - path: /etc\n      - path: ../../outside\n      - path: \"~root/.npm\"\n      - path: .next\n      - path: .next/cache\n      - name: BAD NAME\n        path: x\n      - path: y\n        key: [../../etc/shadow]\n";
    std::fs::write(mdir.join("web.yaml"), manifest(&repo, &["true"], caches)).unwrap();
    let out = gantry_cli()
        .args(["validate", "--manifests"])
        .arg(&mdir)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for field in [
        "spec.build.caches[0].path",
        "spec.build.caches[1].path",
        "spec.build.caches[2].path",
        "spec.build.caches[4].path",
        "spec.build.caches[5].name",
        "spec.build.caches[6].key[0]",
    ] {
        assert!(text.contains(field), "{field} in:\n{text}");
    }
    assert!(text.contains("web.yaml:"), "file:line: {text}");
}
