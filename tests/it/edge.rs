//! The generated CloudFront Function, run under Node with CloudFront's viewer-request event
//! shape (cloudfront-js-2.0): host redirects keep path and query, pretty URLs rewrite.

use std::process::Command;

use gantry::domain::HostRedirect;
use gantry::plan::edge::{function_code, EdgeRules};
use serde_json::{json, Value};

fn run(rules: &EdgeRules, event: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}\nconst event = {};\nprocess.stdout.write(JSON.stringify(handler(event)));\n",
        function_code(rules),
        event
    );
    let path = dir.path().join("fn.js");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("node")
        .arg(&path)
        .output()
        .expect("node is installed (scripts/setup.sh installs npm/node)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn event(host: &str, uri: &str, querystring: Value) -> Value {
    json!({
        "version": "1.0",
        "context": { "distributionDomainName": "d111111abcdef8.cloudfront.net", "distributionId": "EDFDVBD6EXAMPLE", "eventType": "viewer-request", "requestId": "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==" },
        "viewer": { "ip": "198.51.100.11" },
        "request": {
            "method": "GET",
            "uri": uri,
            "querystring": querystring,
            "headers": { "host": { "value": host }, "accept": { "value": "text/html", "multiValue": [{ "value": "text/html" }] } },
            "cookies": {}
        }
    })
}

fn rules() -> EdgeRules {
    EdgeRules {
        redirects: vec![HostRedirect {
            from: "www.example.com".into(),
            to: "example.com".into(),
            status: 301,
        }],
        pretty_urls: true,
        spa: false,
    }
}

#[test]
fn www_redirects_to_the_apex_keeping_path_and_query() {
    let qs = json!({ "utm_source": { "value": "mail" }, "tag": { "value": "a", "multiValue": [{ "value": "a" }, { "value": "b" }] }, "flag": { "value": "" } });
    let r = run(&rules(), event("WWW.Example.com", "/projects/12", qs));
    assert_eq!(r["statusCode"], 301);
    assert_eq!(r["statusDescription"], "Moved Permanently");
    // serde_json orders the object's keys; the function keeps the order it is given.
    assert_eq!(
        r["headers"]["location"]["value"],
        "https://example.com/projects/12?flag&tag=a&tag=b&utm_source=mail"
    );
    let plain = run(&rules(), event("www.example.com", "/", json!({})));
    assert_eq!(
        plain["headers"]["location"]["value"],
        "https://example.com/"
    );
}

#[test]
fn pretty_urls_rewrite_to_the_exported_files() {
    for (uri, want) in [
        ("/projects/12", "/projects/12.html"),
        ("/docs/", "/docs/index.html"),
        ("/", "/index.html"),
        (
            "/_next/static/chunks/app-3f2a.js",
            "/_next/static/chunks/app-3f2a.js",
        ),
        ("/projects/12.txt", "/projects/12.txt"),
    ] {
        let r = run(&rules(), event("example.com", uri, json!({})));
        assert_eq!(r["uri"], want, "{uri}");
        assert!(r.get("statusCode").is_none());
    }
    let off = run(
        &EdgeRules {
            pretty_urls: false,
            ..rules()
        },
        event("example.com", "/projects/12", json!({})),
    );
    assert_eq!(off["uri"], "/projects/12");
}

#[test]
fn a_single_page_app_serves_its_shell_for_every_route_and_files_as_they_are() {
    let spa = EdgeRules {
        pretty_urls: false,
        spa: true,
        ..rules()
    };
    for (uri, want) in [
        ("/", "/index.html"),
        ("/events/42/checkin", "/index.html"),
        ("/admin/", "/index.html"),
        ("/assets/index-3f2a.js", "/assets/index-3f2a.js"),
        ("/favicon.ico", "/favicon.ico"),
    ] {
        let r = run(&spa, event("example.com", uri, json!({})));
        assert_eq!(r["uri"], want, "{uri}");
    }
    // Host redirects still come first.
    let r = run(&spa, event("www.example.com", "/events/42", json!({})));
    assert_eq!(r["statusCode"], 301);
}
