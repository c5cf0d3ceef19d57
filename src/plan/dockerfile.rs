//! What a Dockerfile builds from: the images its `FROM` lines name, with `ARG` values
//! substituted (the defaults declared before the first `FROM`, overridden by the build's
//! `--build-arg`s), stage names and `scratch` left out. Gantry resolves them to digests for the
//! image's inputs key (a new base under the same tag is a new input) and gives buildah
//! credentials for their registries.

use std::collections::BTreeMap;

/// The images `FROM` lines name, in order, each once.
pub fn base_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut seen_from = false;
    for line in logical_lines(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("ARG") && !seen_from {
            // `ARG NAME` or `ARG NAME=default`; a build arg wins over the default.
            for decl in words {
                let (name, default) = match decl.split_once('=') {
                    Some((n, v)) => (n, Some(unquote(v))),
                    None => (decl, None),
                };
                let value = build_args.get(name).cloned().or(default);
                if let Some(v) = value {
                    args.insert(name.to_owned(), v);
                }
            }
            continue;
        }
        if !instruction.eq_ignore_ascii_case("FROM") {
            continue;
        }
        seen_from = true;
        let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
        let Some(image) = rest.first() else { continue };
        let image = substitute(image, &args);
        let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
        if !image.is_empty()
            && image != "scratch"
            && !is_stage
            && !image.contains('$')
            && !out.contains(&image)
        {
            out.push(image);
        }
        if rest.len() >= 3 && rest[1].eq_ignore_ascii_case("AS") {
            stages.push(rest[2].to_owned());
        }
    }
    out
}

/// Lines with `\` continuations joined and comments dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if current.is_empty() && line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn unquote(v: &str) -> String {
    v.trim_matches('"').trim_matches('\'').to_owned()
}

/// `$NAME`, `${NAME}` and `${NAME:-default}` from `args`; an unknown name stays as written.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, default, len) = if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                out.push_str(&rest[at..]);
                return out;
            };
            let body = &inner[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            (name, default, end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], None, end)
        };
        match args.get(name).map(String::as_str).or(default) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[at..at + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stages_scratch_and_flags_are_left_out() {
        let d = "# syntax=docker/dockerfile:1\nFROM --platform=$BUILDPLATFORM node:20 AS deps\nRUN npm ci\nFROM deps AS build\nFROM scratch\nfrom python:3.12-slim as app\nCOPY --from=build /out /app\nFROM node:20\n";
        assert_eq!(base_images(d, &args(&[])), ["node:20", "python:3.12-slim"]);
    }

    #[test]
    fn args_before_the_first_from_are_substituted_and_build_args_win() {
        let d = "ARG REGISTRY=127.0.0.1:5000\nARG BASE=\"base/busybox:1\"\nARG TAG\nFROM ${REGISTRY}/${BASE}\nFROM $REGISTRY/other:${TAG:-latest}\nARG LATE=x\nFROM img:${LATE}\n";
        assert_eq!(
            base_images(d, &args(&[])),
            [
                "127.0.0.1:5000/base/busybox:1",
                "127.0.0.1:5000/other:latest"
            ]
        );
        assert_eq!(
            base_images(d, &args(&[("BASE", "base/debian:12"), ("TAG", "v2")])),
            ["127.0.0.1:5000/base/debian:12", "127.0.0.1:5000/other:v2"],
            "an ARG declared after a FROM does not apply to FROM lines"
        );
    }

    #[test]
    fn continuations_are_joined() {
        let d = "FROM \\\n  alpine:3.20 \\\n  AS base\nFROM base\n";
        assert_eq!(base_images(d, &args(&[])), ["alpine:3.20"]);
    }
}
