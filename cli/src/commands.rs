//! `stage7 echo`, `stage7 call` and `stage7 send`.

use std::convert::Infallible;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use stage7_transport::StandardStack;
use stage7_transport::amqp::AmqpTransport;
use stage7_transport::{Codec, Config, Entity, Message, MessageType};
use tower::ServiceExt;

/// How long `call` and `send` wait for a broker that answers before the
/// first attempt, so that a running broker is used.
const CONNECT_WAIT: Duration = Duration::from_secs(3);

/// `stage7 echo`: an entity that answers requests with their content.
#[derive(Debug, Args)]
pub(crate) struct EchoArgs {
    /// Component type.
    #[arg(long = "type", default_value = "Echo")]
    component_type: String,
    /// Entity id; generated when absent.
    #[arg(long)]
    id: Option<String>,
    /// Address of the HTTP endpoint.
    #[arg(long, default_value = "127.0.0.1:0")]
    http: String,
}

/// `stage7 call` / `stage7 send`: one message to one recipient.
#[derive(Debug, Args)]
pub(crate) struct MessageArgs {
    /// Recipient: an entity id, a component type, `user` or `all`.
    #[arg(long)]
    to: String,
    /// The content, as JSON.
    #[arg(long, default_value = "null")]
    content: String,
    /// The message type.
    #[arg(long = "type", default_value = "request")]
    message_type: String,
}

fn config() -> Result<Config, String> {
    Config::from_env().map_err(|e| e.to_string())
}

pub(crate) async fn echo(args: EchoArgs) -> Result<(), String> {
    let handler = tower::service_fn(|message: Message| async move {
        if !message.requires_sync() {
            return Ok::<_, Infallible>(None);
        }
        let reply = message.reply(serde_json::Value::Null);
        let content = message.into_content().unwrap_or_default();
        Ok(Some(reply.with_content(content)))
    });
    let mut builder = Entity::builder(&args.component_type, handler)
        .listen(&args.http)
        .config(config()?);
    if let Some(id) = args.id {
        builder = builder.id(id);
    }
    let entity = builder.start().await.map_err(|e| e.to_string())?;
    let address = entity
        .http_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("READY {} http={address}", entity.id());
    wait_for_signal().await;
    entity.shutdown().await.map_err(|e| e.to_string())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn client(config: &Config) -> Result<StandardStack, String> {
    let mut amqp = AmqpTransport::builder(config.rabbitmq_url.expose())
        .connection_name(format!("stage7-cli pid {}", std::process::id()))
        .codec(Codec::new(config.max_message_size));
    if let Some(ca) = &config.tls_ca {
        amqp = amqp.tls_ca(ca.clone());
    }
    let amqp = amqp.build().map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(CONNECT_WAIT, amqp.first_attempt()).await;
    StandardStack::standard(amqp, config).map_err(|e| e.to_string())
}

fn message(args: &MessageArgs, requires_sync: bool) -> Result<Message, String> {
    let content: Value =
        serde_json::from_str(&args.content).map_err(|e| format!("--content is not JSON: {e}"))?;
    let mut message = Message::new(MessageType::parse(&args.message_type))
        .with_recipient(&args.to)
        .with_content(content)
        .with_sync(requires_sync);
    message.stamp("stage7-cli");
    Ok(message)
}

pub(crate) async fn call(args: MessageArgs) -> Result<(), String> {
    let config = config()?;
    let message = message(&args, true)?;
    let delivery = client(&config)
        .await?
        .oneshot(message)
        .await
        .map_err(|e| e.to_string())?;
    let route = delivery.route();
    let reply = delivery.into_reply().ok_or("the peer sent no reply")?;
    println!(
        "{}",
        serde_json::to_string(&reply).map_err(|e| e.to_string())?
    );
    println!("route={route}");
    Ok(())
}

pub(crate) async fn send(args: MessageArgs) -> Result<(), String> {
    let config = config()?;
    let message = message(&args, false)?;
    let id = message.id().to_owned();
    let delivery = client(&config)
        .await?
        .oneshot(message)
        .await
        .map_err(|e| e.to_string())?;
    println!("sent {id}");
    println!("route={}", delivery.route());
    Ok(())
}
