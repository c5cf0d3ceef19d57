//! ChatOps decisions, pure: which slash command was asked for, whether the caller may run it
//! (deny by default: with no permission configured only read-only commands answer), whether
//! it needs a confirmation click first (production deploys and rollbacks), the command set
//! registered with Discord, and the confirmation buttons' ids.

use globset::Glob;

use crate::domain::{short_sha, Deployment, Paused};

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    Deploy {
        app: String,
        git_ref: Option<String>,
    },
    Rollback {
        app: String,
        to: Option<i64>,
    },
    Status {
        app: Option<String>,
    },
    History {
        app: String,
    },
    Diff {
        app: String,
    },
    Pause {
        app: String,
    },
    Resume {
        app: String,
    },
    /// Environment `from`'s release of `app` deployed to environment `to`.
    Promote {
        app: String,
        from: String,
        to: String,
    },
    /// An environment's hold released.
    ReleaseHold {
        app: String,
    },
}

impl ChatCommand {
    /// From a command's name and its options as (name, value) pairs.
    pub fn parse(name: &str, options: &[(String, String)]) -> Result<Self, String> {
        let opt = |k: &str| {
            options
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let app = || opt("app").ok_or_else(|| format!("/{name} needs an `app`"));
        Ok(match name {
            "deploy" => Self::Deploy {
                app: app()?,
                git_ref: opt("ref"),
            },
            "rollback" => Self::Rollback {
                app: app()?,
                to: match opt("to") {
                    Some(v) => Some(
                        v.trim_start_matches('#')
                            .parse()
                            .map_err(|_| format!("`{v}` is not a deployment number"))?,
                    ),
                    None => None,
                },
            },
            "status" => Self::Status { app: opt("app") },
            "history" => Self::History { app: app()? },
            "diff" => Self::Diff { app: app()? },
            "pause" => Self::Pause { app: app()? },
            "resume" => Self::Resume { app: app()? },
            "promote" => Self::Promote {
                app: app()?,
                from: opt("from").ok_or("/promote needs `from`")?,
                to: opt("to").ok_or("/promote needs `to`")?,
            },
            "release-hold" => Self::ReleaseHold { app: app()? },
            other => return Err(format!("unknown command /{other}")),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Deploy { .. } => "deploy",
            Self::Rollback { .. } => "rollback",
            Self::Status { .. } => "status",
            Self::History { .. } => "history",
            Self::Diff { .. } => "diff",
            Self::Pause { .. } => "pause",
            Self::Resume { .. } => "resume",
            Self::Promote { .. } => "promote",
            Self::ReleaseHold { .. } => "release-hold",
        }
    }

    pub fn app(&self) -> Option<&str> {
        match self {
            Self::Status { app } => app.as_deref(),
            Self::Deploy { app, .. }
            | Self::Rollback { app, .. }
            | Self::History { app }
            | Self::Diff { app }
            | Self::Pause { app }
            | Self::Resume { app }
            | Self::Promote { app, .. }
            | Self::ReleaseHold { app } => Some(app),
        }
    }

    /// Changes something (needs a permission).
    pub fn mutating(&self) -> bool {
        !matches!(
            self,
            Self::Status { .. } | Self::History { .. } | Self::Diff { .. }
        )
    }
}

/// Who may run mutating commands (`discord.permissions` in gantry.yaml).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    /// App name globs; empty: every app.
    pub apps: Vec<String>,
    /// Environments; empty: every environment.
    pub environments: Vec<String>,
    /// Discord role ids, any of which grants the permission.
    pub roles: Vec<String>,
    /// Discord user ids granted the permission.
    pub users: Vec<String>,
    /// Commands granted; empty: every mutating command.
    pub commands: Vec<String>,
}

/// The Discord user asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed once the caller confirms with the button.
    Confirm,
    Deny(String),
}

/// Whether `caller` may run `cmd` on an app in `environment`.
pub fn decide(
    cmd: &ChatCommand,
    environment: Option<&str>,
    caller: &Caller,
    rules: &[Permission],
) -> Decision {
    if !cmd.mutating() {
        return Decision::Allow;
    }
    let app = cmd.app().unwrap_or_default();
    let env = environment.unwrap_or_default();
    let granted = rules.iter().any(|r| {
        let app_ok = r.apps.is_empty()
            || r.apps.iter().any(|g| {
                Glob::new(g)
                    .map(|g| g.compile_matcher().is_match(app))
                    .unwrap_or(false)
            });
        let env_ok = r.environments.is_empty() || r.environments.iter().any(|e| e == env);
        let cmd_ok = r.commands.is_empty() || r.commands.iter().any(|c| c == cmd.name());
        let who_ok = r.users.contains(&caller.user_id)
            || r.roles.iter().any(|role| caller.roles.contains(role));
        app_ok && env_ok && cmd_ok && who_ok
    });
    if !granted {
        return Decision::Deny(if rules.is_empty() {
            format!(
                "/{} is not allowed: no Discord permissions are configured on this Gantry (only read-only commands answer)",
                cmd.name()
            )
        } else {
            format!(
                "you may not /{} `{app}` in {}",
                cmd.name(),
                if env.is_empty() {
                    "this environment"
                } else {
                    env
                }
            )
        });
    }
    let risky = matches!(
        cmd,
        ChatCommand::Deploy { .. } | ChatCommand::Rollback { .. } | ChatCommand::Promote { .. }
    );
    if risky && env == "production" {
        Decision::Confirm
    } else {
        Decision::Allow
    }
}

/// How long a confirmation button stays valid.
pub const CONFIRM_SECONDS: i64 = 300;

/// The custom id of the button that confirms `cmd`, asked at `at` (unix seconds). Discord
/// limits custom ids to 100 characters.
pub fn confirm_id(cmd: &ChatCommand, at: i64) -> Option<String> {
    let (app, arg) = match cmd {
        ChatCommand::Deploy { app, git_ref } => (app, git_ref.clone().unwrap_or_default()),
        ChatCommand::Rollback { app, to } => (app, to.map(|t| t.to_string()).unwrap_or_default()),
        ChatCommand::Promote { app, from, to } => (app, format!("{from}>{to}")),
        _ => return None,
    };
    let id = format!("gantry:confirm:{at}:{}:{app}:{arg}", cmd.name());
    (id.len() <= 100).then_some(id)
}

pub const CANCEL_ID: &str = "gantry:cancel";

/// The command a confirmation button stands for, if it is still valid at `now`.
pub fn parse_confirm(id: &str, now: i64) -> Result<ChatCommand, String> {
    let rest = id
        .strip_prefix("gantry:confirm:")
        .ok_or_else(|| "not a Gantry button".to_owned())?;
    let mut parts = rest.splitn(4, ':');
    let (Some(at), Some(name), Some(app), Some(arg)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed confirmation".into());
    };
    let at: i64 = at
        .parse()
        .map_err(|_| "malformed confirmation".to_owned())?;
    if now - at > CONFIRM_SECONDS || at > now + 60 {
        return Err("this confirmation has expired: run the command again".into());
    }
    let mut options = vec![("app".to_owned(), app.to_owned())];
    match (name, arg.split_once('>')) {
        ("promote", Some((from, to))) => {
            options.push(("from".to_owned(), from.to_owned()));
            options.push(("to".to_owned(), to.to_owned()));
        }
        _ if !arg.is_empty() => {
            let key = if name == "deploy" { "ref" } else { "to" };
            options.push((key.to_owned(), arg.to_owned()));
        }
        _ => {}
    }
    let cmd = ChatCommand::parse(name, &options)?;
    matches!(
        cmd,
        ChatCommand::Deploy { .. } | ChatCommand::Rollback { .. } | ChatCommand::Promote { .. }
    )
    .then_some(cmd)
    .ok_or_else(|| "malformed confirmation".into())
}

/// One option of a registered command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OptionDef {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
}

/// A slash command as registered with Discord (all options are strings).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandDef {
    pub name: &'static str,
    pub description: &'static str,
    pub options: Vec<OptionDef>,
}

/// Gantry's command set, in registration order.
pub fn command_set() -> Vec<CommandDef> {
    let app = |required| OptionDef {
        name: "app",
        description: "The app (its manifest's metadata.name)",
        required,
    };
    vec![
        CommandDef {
            name: "deploy",
            description: "Deploy an app (its tracked branch, or a ref)",
            options: vec![
                app(true),
                OptionDef {
                    name: "ref",
                    description: "Branch, tag or refs/... to deploy",
                    required: false,
                },
            ],
        },
        CommandDef {
            name: "rollback",
            description: "Redeploy an earlier release exactly and hold automatic deploys",
            options: vec![
                app(true),
                OptionDef {
                    name: "to",
                    description: "Deployment number to restore (default: the previous release)",
                    required: false,
                },
            ],
        },
        CommandDef {
            name: "status",
            description: "Where every app (or one) stands",
            options: vec![app(false)],
        },
        CommandDef {
            name: "history",
            description: "An app's recent deployments",
            options: vec![app(true)],
        },
        CommandDef {
            name: "diff",
            description: "What deploying an app would change in ECS",
            options: vec![app(true)],
        },
        CommandDef {
            name: "pause",
            description: "Stop pushes from deploying an app",
            options: vec![app(true)],
        },
        CommandDef {
            name: "resume",
            description: "Let pushes deploy an app again",
            options: vec![app(true)],
        },
        CommandDef {
            name: "promote",
            description: "Deploy one environment's release to another, exactly, building nothing",
            options: vec![
                app(true),
                OptionDef {
                    name: "from",
                    description: "The environment whose release to promote (e.g. staging)",
                    required: true,
                },
                OptionDef {
                    name: "to",
                    description: "The environment to deploy it to (e.g. production)",
                    required: true,
                },
            ],
        },
        CommandDef {
            name: "release-hold",
            description: "Release an environment's hold (its APP-ENV): automation deploys it again",
            options: vec![app(true)],
        },
    ]
}

/// Discord's interaction callback types (the `type` of an interaction response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackType {
    /// Answers a PING.
    Pong = 1,
    /// A message in answer to a command.
    ChannelMessage = 4,
    /// "Thinking…": the answer follows as an edit of the original response.
    DeferredChannelMessage = 5,
    /// Replaces the message a component (button) was on.
    UpdateMessage = 7,
}

/// Message flag: only the caller sees it.
pub const EPHEMERAL: u64 = 1 << 6;

/// Component types and button styles used in confirmations.
const ACTION_ROW: u8 = 1;
const BUTTON: u8 = 2;
const STYLE_SECONDARY: u8 = 2;
const STYLE_DANGER: u8 = 4;

/// A button on a confirmation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: &'static str,
    pub custom_id: String,
    pub danger: bool,
}

/// An interaction response, before it becomes Discord's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: CallbackType,
    pub content: Option<String>,
    pub ephemeral: bool,
    /// `Some(vec![])` removes the buttons of the message being updated.
    pub buttons: Option<Vec<Button>>,
}

impl Reply {
    pub fn pong() -> Self {
        Self {
            kind: CallbackType::Pong,
            content: None,
            ephemeral: false,
            buttons: None,
        }
    }

    /// A message only the caller sees.
    pub fn ephemeral(content: impl Into<String>) -> Self {
        Self {
            kind: CallbackType::ChannelMessage,
            content: Some(content.into()),
            ephemeral: true,
            buttons: None,
        }
    }

    /// A message the channel sees.
    pub fn public(content: impl Into<String>) -> Self {
        Self {
            ephemeral: false,
            ..Self::ephemeral(content)
        }
    }

    /// Replaces the message a button was on, and removes its buttons.
    pub fn update(content: impl Into<String>) -> Self {
        Self {
            kind: CallbackType::UpdateMessage,
            content: Some(content.into()),
            ephemeral: false,
            buttons: Some(vec![]),
        }
    }

    /// Answered later by editing the original response; only the caller sees it.
    pub fn deferred() -> Self {
        Self {
            kind: CallbackType::DeferredChannelMessage,
            content: None,
            ephemeral: true,
            buttons: None,
        }
    }

    /// Asks the caller (only) to confirm `cmd` with a button that carries `confirm_id`.
    pub fn confirm(cmd: &ChatCommand, confirm_id: String) -> Self {
        let what = match cmd {
            ChatCommand::Deploy { app, git_ref } => format!(
                "Deploy `{app}` ({}) to **production**?",
                git_ref.as_deref().unwrap_or("its branch")
            ),
            ChatCommand::Rollback { app, to } => format!(
                "Roll `{app}` back in **production** to {}? Automatic deploys will pause.",
                to.map_or("the previous release".to_owned(), |t| format!(
                    "deployment #{t}"
                ))
            ),
            ChatCommand::Promote { app, from, to } => format!(
                "Promote `{app}` from `{from}` to **{to}** (the same images and site content)?"
            ),
            other => format!("Run `/{}`?", other.name()),
        };
        Self {
            buttons: Some(vec![
                Button {
                    label: "Confirm",
                    custom_id: confirm_id,
                    danger: true,
                },
                Button {
                    label: "Cancel",
                    custom_id: CANCEL_ID.to_owned(),
                    danger: false,
                },
            ]),
            ..Self::ephemeral(format!(
                "{what} (expires in {} minutes)",
                CONFIRM_SECONDS / 60
            ))
        }
    }

    /// Discord's JSON for this response. Mentions in content never ping anyone.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        if self.kind == CallbackType::Pong {
            return json!({ "type": CallbackType::Pong as u8 });
        }
        let mut data = Map::new();
        if let Some(c) = &self.content {
            data.insert("content".into(), json!(c));
            data.insert("allowed_mentions".into(), json!({ "parse": [] }));
        }
        if self.ephemeral {
            data.insert("flags".into(), json!(EPHEMERAL));
        }
        if let Some(buttons) = &self.buttons {
            let rows = if buttons.is_empty() {
                vec![]
            } else {
                let row: Vec<Value> = buttons
                    .iter()
                    .map(|b| {
                        json!({
                            "type": BUTTON,
                            "style": if b.danger { STYLE_DANGER } else { STYLE_SECONDARY },
                            "label": b.label,
                            "custom_id": b.custom_id,
                        })
                    })
                    .collect();
                vec![json!({ "type": ACTION_ROW, "components": row })]
            };
            data.insert("components".into(), Value::Array(rows));
        }
        json!({ "type": self.kind as u8, "data": data })
    }
}

/// The refusal a denied caller sees.
pub fn denied(reason: &str) -> String {
    format!("⛔ {reason}. Nothing was changed.")
}

/// One line per app for `/status`: its last deployment and any pause.
pub fn status_text(apps: &[AppLine<'_>], only: Option<&str>) -> String {
    if apps.is_empty() {
        return match only {
            Some(a) => format!("no app named `{a}` in the manifests"),
            None => "no apps in the manifests".into(),
        };
    }
    apps.iter()
        .map(|a| {
            let mut line = match a.last {
                Some(d) => format!(
                    "**{}** ({}): #{} {} `{}`",
                    a.name,
                    a.environment,
                    d.id,
                    d.state,
                    d.sha.as_deref().map_or("-", short_sha)
                ),
                None => format!("**{}** ({}): never deployed", a.name, a.environment),
            };
            if let Some(p) = a.paused {
                let what = match p.kind {
                    crate::domain::PauseKind::Hold => "held",
                    crate::domain::PauseKind::Pause => "paused",
                };
                line.push_str(&format!(" — {what}: {}", p.reason));
            }
            if let Some(d) = a.last.filter(|d| {
                matches!(
                    d.state,
                    crate::domain::DeploymentState::Waiting
                        | crate::domain::DeploymentState::AwaitingApproval
                )
            }) {
                line.push_str(&format!(" — {}", d.reason.as_deref().unwrap_or("waiting")));
            }
            if let Some(r) = a
                .release
                .filter(|r| a.last.is_none_or(|d| d.id != r.deployment_id))
            {
                line.push_str(&format!(
                    " — runs #{} `{}`",
                    r.deployment_id,
                    short_sha(&r.sha)
                ));
            }
            if a.drifted {
                line.push_str(" — ⚠️ drifted from its release (`gantry drift`)");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An app as `/status` shows it.
pub struct AppLine<'a> {
    pub name: &'a str,
    pub environment: &'a str,
    pub last: Option<&'a Deployment>,
    pub paused: Option<&'a Paused>,
    /// What runs (the newest good release), shown when it is not the last deployment's.
    pub release: Option<&'a crate::domain::Release>,
    pub drifted: bool,
}

/// `/history`: the newest deployments, one line each.
pub fn history_text(app: &str, list: &[Deployment]) -> String {
    if list.is_empty() {
        return format!("`{app}` has no deployments yet");
    }
    list.iter()
        .map(|d| {
            format!(
                "#{} {} `{}` {} by {} ({})",
                d.id,
                d.state,
                d.sha.as_deref().map_or("-", short_sha),
                d.git_ref,
                d.actor,
                d.created_at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The follow-up that answers a deferred `/diff`, clipped to fit a Discord message.
pub fn diff_text(app: &str, diff: &str) -> String {
    if diff.is_empty() {
        return format!("`{app}` declares no ECS services");
    }
    let clipped: String = diff.chars().take(1900).collect();
    format!("```diff\n{clipped}\n```")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user: &str, roles: &[&str]) -> Caller {
        Caller {
            user_id: user.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn promote_parses_and_its_confirmation_round_trips() {
        let cmd = ChatCommand::parse(
            "promote",
            &opts(&[("app", "shop"), ("from", "staging"), ("to", "production")]),
        )
        .unwrap();
        assert!(cmd.mutating());
        assert!(ChatCommand::parse("promote", &opts(&[("app", "shop")])).is_err());
        let id = confirm_id(&cmd, 1_000).unwrap();
        assert_eq!(parse_confirm(&id, 1_010).unwrap(), cmd);
        let rules = [Permission {
            users: vec!["1".into()],
            ..Default::default()
        }];
        let caller = Caller {
            user_id: "1".into(),
            roles: vec![],
        };
        assert_eq!(
            decide(&cmd, Some("production"), &caller, &rules),
            Decision::Confirm
        );
        assert_eq!(
            decide(&cmd, Some("staging"), &caller, &rules),
            Decision::Allow
        );
    }

    #[test]
    fn parses_commands_and_their_options() {
        assert_eq!(
            ChatCommand::parse("rollback", &opts(&[("app", "web"), ("to", "#12")])).unwrap(),
            ChatCommand::Rollback {
                app: "web".into(),
                to: Some(12)
            }
        );
        assert!(ChatCommand::parse("deploy", &[]).is_err());
        assert!(ChatCommand::parse("rollback", &opts(&[("app", "w"), ("to", "x")])).is_err());
        assert_eq!(
            ChatCommand::parse("status", &[]).unwrap(),
            ChatCommand::Status { app: None }
        );
    }

    #[test]
    fn deny_by_default_read_only_always() {
        let deploy = ChatCommand::Deploy {
            app: "web".into(),
            git_ref: None,
        };
        let anyone = caller("1", &[]);
        assert!(
            matches!(decide(&deploy, Some("staging"), &anyone, &[]), Decision::Deny(m) if m.contains("no Discord permissions"))
        );
        assert_eq!(
            decide(&ChatCommand::Status { app: None }, None, &anyone, &[]),
            Decision::Allow
        );
    }

    #[test]
    fn permissions_by_role_user_app_environment_and_command() {
        let rules = vec![
            Permission {
                apps: vec!["web*".into()],
                environments: vec!["staging".into(), "production".into()],
                roles: vec!["ops".into()],
                ..Default::default()
            },
            Permission {
                users: vec!["42".into()],
                commands: vec!["pause".into()],
                ..Default::default()
            },
        ];
        let deploy = |app: &str| ChatCommand::Deploy {
            app: app.into(),
            git_ref: None,
        };
        let ops = caller("7", &["ops"]);
        assert_eq!(
            decide(&deploy("web"), Some("staging"), &ops, &rules),
            Decision::Allow
        );
        assert_eq!(
            decide(&deploy("web"), Some("production"), &ops, &rules),
            Decision::Confirm
        );
        assert!(matches!(
            decide(&deploy("api"), Some("staging"), &ops, &rules),
            Decision::Deny(_)
        ));
        assert!(matches!(
            decide(&deploy("web"), Some("dev"), &ops, &rules),
            Decision::Deny(_)
        ));
        let user = caller("42", &[]);
        let pause = ChatCommand::Pause { app: "api".into() };
        assert_eq!(
            decide(&pause, Some("production"), &user, &rules),
            Decision::Allow
        );
        assert!(matches!(
            decide(&deploy("api"), Some("production"), &user, &rules),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn confirmation_ids_round_trip_and_expire() {
        let cmd = ChatCommand::Rollback {
            app: "web".into(),
            to: Some(3),
        };
        let id = confirm_id(&cmd, 1_000).unwrap();
        assert_eq!(parse_confirm(&id, 1_100).unwrap(), cmd);
        assert!(parse_confirm(&id, 1_000 + CONFIRM_SECONDS + 1).is_err());
        let deploy = ChatCommand::Deploy {
            app: "web".into(),
            git_ref: Some("refs/heads/release:1".into()),
        };
        let id = confirm_id(&deploy, 5).unwrap();
        assert_eq!(parse_confirm(&id, 6).unwrap(), deploy);
        assert!(parse_confirm("gantry:confirm:5:pause:web:", 6).is_err());
    }

    #[test]
    fn interaction_responses_as_discord_reads_them() {
        let deploy = ChatCommand::Deploy {
            app: "api".into(),
            git_ref: Some("refs/tags/v1".into()),
        };
        let rollback = ChatCommand::Rollback {
            app: "api".into(),
            to: Some(12),
        };
        insta::assert_json_snapshot!("pong", Reply::pong().to_json());
        insta::assert_json_snapshot!("ephemeral", Reply::ephemeral(denied("no")).to_json());
        insta::assert_json_snapshot!("public", Reply::public("queued").to_json());
        insta::assert_json_snapshot!("update", Reply::update("Cancelled.").to_json());
        insta::assert_json_snapshot!("deferred", Reply::deferred().to_json());
        insta::assert_json_snapshot!(
            "confirm_deploy",
            Reply::confirm(&deploy, "gantry:confirm:x".into()).to_json()
        );
        insta::assert_json_snapshot!(
            "confirm_rollback",
            Reply::confirm(&rollback, "gantry:confirm:y".into()).to_json()
        );
    }

    #[test]
    fn diff_answers_are_clipped_to_a_message() {
        assert_eq!(diff_text("api", ""), "`api` declares no ECS services");
        let long = "+".repeat(5000);
        let text = diff_text("api", &long);
        assert!(
            text.len() < 2000 && text.starts_with("```diff\n"),
            "{}",
            text.len()
        );
    }
}
