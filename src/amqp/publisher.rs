//! Confirmed, mandatory, persistent publishing, and what its outcomes mean.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};

use super::topology::{EXCHANGE, routing_key};
use crate::error::{Error, ErrorClass, ErrorKind};
use crate::message::Message;
use crate::transport::{Delivery, Route};

const PERSISTENT: u8 = 2;
const JSON: &str = "application/json";

/// The properties of DESIGN §3: persistent, JSON, `message_id` = id,
/// `timestamp`, `app_id` = sender.
pub(crate) fn properties(message: &Message) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(JSON.into())
        .with_message_id(message.id().into())
        .with_timestamp(now);
    if message.sender().is_empty() {
        properties
    } else {
        properties.with_app_id(message.sender().into())
    }
}

pub(crate) fn mandatory() -> BasicPublishOptions {
    BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    }
}

/// The message never left: the connection or channel failed before the
/// frames were written.
pub(crate) fn not_sent(error: lapin::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        ErrorClass::NotDelivered,
        format!("publish failed before the message was sent: {error}"),
    )
    .with_route(Route::Amqp)
    .with_source(error)
}

/// The message was written but the broker's answer never came.
pub(crate) fn lost(error: lapin::Error, waiting_for: &str) -> Error {
    Error::new(
        ErrorKind::ConnectionLost,
        ErrorClass::UnknownOutcome,
        format!("connection lost while waiting for the {waiting_for}: {error}"),
    )
    .with_route(Route::Amqp)
    .with_source(error)
}

/// What a broker confirm says about delivery: an ack without a return is
/// the only success.
pub(crate) fn confirmed(confirmation: Confirmation, recipient: &str) -> Result<(), Error> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(Error::new(
            ErrorKind::NoRoute,
            ErrorClass::NotDelivered,
            format!(
                "no queue is bound for recipient `{recipient}`: the broker returned the message ({} {})",
                returned.reply_code, returned.reply_text
            ),
        )
        .with_key(recipient)
        .with_route(Route::Amqp)),
        Confirmation::Nack(None) => Err(Error::new(
            ErrorKind::Overloaded,
            ErrorClass::NotDelivered,
            "the broker refused the message (nack)",
        )
        .with_route(Route::Amqp)),
    }
}

/// Publishes an asynchronous message and waits for the broker's confirm.
pub(crate) async fn publish(
    channel: &Channel,
    message: &Message,
    body: &[u8],
) -> Result<Delivery, Error> {
    let recipient = message.recipient().unwrap_or_default();
    let confirm = channel
        .basic_publish(
            EXCHANGE.into(),
            routing_key(recipient).into(),
            mandatory(),
            body,
            properties(message),
        )
        .await
        .map_err(not_sent)?;
    let confirmation = confirm.await.map_err(|e| lost(e, "broker's confirm"))?;
    confirmed(confirmation, recipient)?;
    Ok(Delivery::new(Route::Amqp, None))
}
