//! Discord through serenity's HTTP client (its rate limiter honours Discord's buckets and
//! `Retry-After`): deployment messages in a channel (bot token) or through a channel webhook,
//! edited in place; interaction follow-ups; command registration (bulk overwrite).
//! `discord.apiUrl` sends every request to another base (a proxy, or a fake in tests).

use std::sync::Arc;

use async_trait::async_trait;
use serenity::builder::{
    CreateActionRow, CreateButton, CreateCommand, CreateCommandOption, CreateEmbed,
    CreateEmbedFooter, CreateMessage, EditInteractionResponse, EditMessage, EditWebhookMessage,
    ExecuteWebhook,
};
use serenity::http::{Http, HttpBuilder};
use serenity::model::application::CommandOptionType;
use serenity::model::id::{ApplicationId, ChannelId, GuildId, MessageId};

use crate::plan::chatops::CommandDef;
use crate::plan::notify::Embed;
use crate::ports::PublishError;
use crate::ports::{Chat, ChatTarget, InteractionReplies};
use crate::secret::Secret;

pub struct Discord {
    http: Arc<Http>,
}

/// Runs `call`, retrying Discord's 429 answers with backoff (0.5 s doubling, 5 tries). With
/// serenity's rate limiter on (no proxy) 429s are already waited out before they surface.
async fn limited<T, F, Fut>(mut call: F) -> Result<T, serenity::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, serenity::Error>>,
{
    let mut wait = std::time::Duration::from_millis(500);
    for attempt in 1.. {
        match call().await {
            Err(serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)))
                if r.status_code.as_u16() == 429 && attempt < 5 =>
            {
                tracing::info!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "Discord rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

/// An error with its HTTP status and source chain (serenity's top-level messages say little
/// on their own).
fn chain(e: &serenity::Error) -> String {
    let mut s = match e {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
            format!("HTTP {}: {e}", r.status_code.as_u16())
        }
        _ => e.to_string(),
    };
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn fail(message: String) -> PublishError {
    PublishError {
        target: "discord",
        message,
    }
}

impl Discord {
    pub fn new(
        bot_token: Option<&Secret>,
        api_url: Option<&str>,
        application_id: Option<u64>,
    ) -> Self {
        // Bounded requests: a Discord that hangs must not hold reporting (or shutdown) up.
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("a rustls HTTP client builds");
        let mut b =
            HttpBuilder::new(bot_token.map(Secret::expose).unwrap_or_default()).client(client);
        if let Some(url) = api_url {
            // serenity sends through a proxy only with its own rate limiter off (a proxy is
            // expected to limit); `limited` below then retries 429s with backoff.
            b = b.proxy(url).ratelimiter_disabled(true);
        }
        if let Some(id) = application_id {
            b = b.application_id(ApplicationId::new(id));
        }
        Self {
            http: Arc::new(b.build()),
        }
    }

    /// Replaces the application's command set (globally, or in one guild) with `defs`.
    #[tracing::instrument(skip_all, fields(guild))]
    pub async fn register_commands(
        &self,
        guild: Option<u64>,
        defs: &[CommandDef],
    ) -> Result<usize, PublishError> {
        let commands: Vec<CreateCommand> = defs
            .iter()
            .map(|d| {
                d.options.iter().fold(
                    CreateCommand::new(d.name).description(d.description),
                    |c, o| {
                        c.add_option(
                            CreateCommandOption::new(
                                CommandOptionType::String,
                                o.name,
                                o.description,
                            )
                            .required(o.required),
                        )
                    },
                )
            })
            .collect();
        let done = match guild {
            Some(g) => {
                self.http
                    .create_guild_commands(GuildId::new(g), &commands)
                    .await
            }
            None => self.http.create_global_commands(&commands).await,
        };
        done.map(|c| c.len())
            .map_err(|e| fail(format!("registering commands: {}", chain(&e))))
    }
}

#[async_trait]
impl InteractionReplies for Discord {
    async fn edit_original(
        &self,
        interaction_token: &str,
        content: &str,
    ) -> Result<(), PublishError> {
        let edit = EditInteractionResponse::new().content(content);
        limited(|| {
            self.http
                .edit_original_interaction_response(interaction_token, &edit, vec![])
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            fail(format!(
                "editing the interaction response: {}",
                chain(&e).replace(interaction_token, "[redacted]")
            ))
        })
    }
}

/// The embed's buttons as one action row (none: no row, which also clears earlier buttons
/// on an edit).
fn components(e: &Embed) -> Vec<CreateActionRow> {
    if e.buttons.is_empty() {
        return vec![];
    }
    let buttons = e
        .buttons
        .iter()
        .map(|b| {
            CreateButton::new(&b.custom_id)
                .label(&b.label)
                .style(if b.danger {
                    serenity::model::application::ButtonStyle::Danger
                } else {
                    serenity::model::application::ButtonStyle::Success
                })
        })
        .collect();
    vec![CreateActionRow::Buttons(buttons)]
}

fn embed(e: &Embed) -> CreateEmbed {
    let mut out = CreateEmbed::new()
        .title(&e.title)
        .description(&e.description)
        .colour(e.color)
        .footer(CreateEmbedFooter::new(&e.footer));
    if let Some(url) = &e.url {
        out = out.url(url);
    }
    for f in &e.fields {
        out = out.field(&f.name, &f.value, f.inline);
    }
    out
}

/// A webhook URL's id and token; errors never echo the URL (the token is a secret).
fn webhook(url: &Secret) -> Result<(serenity::model::id::WebhookId, String), PublishError> {
    let (id, token) = crate::domain::discord::parse_webhook_url(url.expose())
        .map_err(|why| fail(format!("the Discord webhook URL {why}")))?;
    Ok((serenity::model::id::WebhookId::new(id.max(1)), token))
}

#[async_trait]
impl Chat for Discord {
    #[tracing::instrument(skip_all)]
    async fn post(&self, target: &ChatTarget, e: &Embed, nonce: &str) -> Result<u64, PublishError> {
        match target {
            ChatTarget::Channel(c) => limited(|| {
                let message = CreateMessage::new()
                    .embed(embed(e))
                    .components(components(e))
                    .nonce(serenity::model::channel::Nonce::String(nonce.to_owned()))
                    .enforce_nonce(true);
                ChannelId::new(*c).send_message(&self.http, message)
            })
            .await
            .map(|m| m.id.get())
            .map_err(|err| fail(format!("posting to channel {c}: {}", chain(&err)))),
            ChatTarget::Webhook(url) => {
                let (id, token) = webhook(url)?;
                let msg = self
                    .http
                    .execute_webhook(
                        id,
                        None,
                        &token,
                        true,
                        vec![],
                        &ExecuteWebhook::new().embed(embed(e)),
                    )
                    .await
                    .map_err(|err| {
                        fail(format!(
                            "posting through the webhook: {}",
                            chain(&err).replace(&token, "[redacted]")
                        ))
                    })?;
                msg.map(|m| m.id.get())
                    .ok_or_else(|| fail("the webhook returned no message".into()))
            }
        }
    }

    #[tracing::instrument(skip_all, fields(message))]
    async fn edit(&self, target: &ChatTarget, message: u64, e: &Embed) -> Result<(), PublishError> {
        match target {
            ChatTarget::Channel(c) => ChannelId::new(*c)
                .edit_message(
                    &self.http,
                    MessageId::new(message),
                    EditMessage::new().embed(embed(e)).components(components(e)),
                )
                .await
                .map(|_| ())
                .map_err(|err| fail(format!("editing message {message}: {}", chain(&err)))),
            ChatTarget::Webhook(url) => {
                let (id, token) = webhook(url)?;
                self.http
                    .edit_webhook_message(
                        id,
                        None,
                        &token,
                        MessageId::new(message),
                        &EditWebhookMessage::new().embed(embed(e)),
                        vec![],
                    )
                    .await
                    .map(|_| ())
                    .map_err(|err| {
                        fail(format!(
                            "editing message {message}: {}",
                            chain(&err).replace(&token, "[redacted]")
                        ))
                    })
            }
        }
    }
}

/// Discord's interaction signatures (Ed25519 over timestamp + body), checked by serenity's
/// verifier.
pub struct InteractionSignatures(serenity::interactions_endpoint::Verifier);

impl InteractionSignatures {
    /// `None` when `key` is not an Ed25519 public key.
    pub fn new(key: [u8; 32]) -> Option<Self> {
        serenity::interactions_endpoint::Verifier::try_new(key)
            .ok()
            .map(Self)
    }
}

impl crate::ports::VerifyInteraction for InteractionSignatures {
    fn verify(&self, signature: &str, timestamp: &str, body: &[u8]) -> bool {
        self.0.verify(signature, timestamp, body).is_ok()
    }
}
