//! Discord webhook URLs, checked the way people get them wrong: each mistake is named (not
//! https, not Discord's host, not a webhook path, an id that is not a number, a token with
//! characters Discord never uses), and no message echoes the token.

/// The hosts Discord serves webhooks from.
const HOSTS: &[&str] = &[
    "discord.com",
    "discordapp.com",
    "canary.discord.com",
    "ptb.discord.com",
];

/// `https://discord.com/api[/vN]/webhooks/ID/TOKEN` -> (ID, TOKEN). A local stand-in on a
/// loopback `http://` address is accepted too (tests, the demo).
pub fn parse_webhook_url(url: &str) -> Result<(u64, String), String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    let host = parsed.host_str().unwrap_or_default();
    let local = super::is_loopback_host(host);
    match parsed.scheme() {
        "https" => {}
        "http" if local => {}
        s => return Err(format!("uses {s}://, not https://")),
    }
    if !local && !HOSTS.contains(&host) {
        return Err(format!("is on {host}, not discord.com"));
    }
    let parts: Vec<&str> = parsed
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let rest = match parts.as_slice() {
        ["api", "webhooks", rest @ ..] => rest,
        ["api", v, "webhooks", rest @ ..] if v.starts_with('v') => rest,
        _ => return Err("has no /api/webhooks/ID/TOKEN path".into()),
    };
    let (id, token) = match rest {
        [id, token] => (id, token),
        [_] => return Err("has a webhook id but no token after it".into()),
        _ => return Err("has no /api/webhooks/ID/TOKEN path".into()),
    };
    let id: u64 = id
        .parse()
        .map_err(|_| format!("has `{id}` where the numeric webhook id belongs"))?;
    if token.is_empty()
        || token.len() > 128
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(
            "has a token with characters a Discord webhook token never has (letters, digits, - and _)"
                .into(),
        );
    }
    Ok((id, (*token).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mistake_is_named_and_unusual_token_lengths_are_fine() {
        let ok = "https://discord.com/api/webhooks/1090000000000000333/abc-DEF_123";
        assert_eq!(
            parse_webhook_url(ok),
            Ok((1090000000000000333, "abc-DEF_123".into()))
        );
        assert!(parse_webhook_url("https://discord.com/api/v10/webhooks/1/tok").is_ok());
        assert!(parse_webhook_url("http://127.0.0.1:9/api/webhooks/1/tok").is_ok());
        for (bad, says) in [
            ("not a url", "is not a URL"),
            ("http://discord.com/api/webhooks/1/t", "not https://"),
            ("https://example.com/api/webhooks/1/t", "not discord.com"),
            (
                "https://discord.com/channels/1/2",
                "no /api/webhooks/ID/TOKEN",
            ),
            ("https://discord.com/api/webhooks/1", "no token"),
            (
                "https://discord.com/api/webhooks/abc/t",
                "numeric webhook id",
            ),
            ("https://discord.com/api/webhooks/1/t%20t", "characters"),
        ] {
            let e = parse_webhook_url(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("t%20t"), "the token is never echoed: {e}");
        }
    }
}
