//! One delivery: decoded, handled once per id, answered or dead-lettered,
//! then settled.

use std::sync::Arc;

use lapin::BasicProperties;
use lapin::Channel;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};

use super::{Channels, Handling};
use crate::amqp::acks::Settlement;
use crate::amqp::publisher::{Settle, confirmed};
use crate::amqp::topology::{DEAD_LETTER_EXCHANGE, ERROR_HEADER, REASON_HEADER};
use crate::error::{Error, ErrorBody};
use crate::handler::unsendable_reply;
use crate::message::{APPLICATION_JSON, Codec, Message, is_json};

/// Handles one delivery: decode, run the handler once per id, reply or
/// dead-letter, then acknowledge.
///
/// A synchronous request always gets an answer — the reply, or an error
/// reply — so its caller fails fast rather than at its timeout. Messages
/// that are not valid, asynchronous messages whose handler failed, and
/// requests naming a `reply_to` this entity does not answer (see
/// [`ReplyQueues`](crate::amqp::reply_to::ReplyQueues); their handler does
/// not run) are dead-lettered with the reason.
pub(super) async fn handle(
    delivery: AmqpDelivery,
    channels: Arc<Channels>,
    handler: Handling,
    codec: Codec,
) {
    let reply_to = delivery.properties.reply_to().as_ref();
    if let Some(to) = reply_to.filter(|to| !channels.reply_queues.allows(to.as_str())) {
        let error = Error::invalid(format!(
            "reply_to `{to}` is neither direct reply-to nor a reply queue this entity answers; \
             the handler did not run"
        ));
        let settled = dead_letter(&channels.dead_letters, &delivery, &error).await;
        return settle(&channels, &delivery, settled).await;
    }
    let (result, poison) = match decode(&delivery, codec) {
        Ok(message) => (handler.handle(message).await, false),
        Err(error) => (Err(error), true),
    };
    if let Some(to) = reply_to {
        let missing;
        let answer = match &result {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => {
                missing = Error::no_reply();
                Err(&missing)
            }
            Err(error) => Err(error),
        };
        send_reply(&channels.consume, &delivery, to, answer, codec).await;
    }
    let settled = match &result {
        Err(error) if poison || reply_to.is_none() => {
            dead_letter(&channels.dead_letters, &delivery, error).await
        }
        _ => Ok(()),
    };
    settle(&channels, &delivery, settled).await;
}

/// Acknowledges the delivery, or rejects it when its dead letter could not
/// be stored.
async fn settle(channels: &Channels, delivery: &AmqpDelivery, dead_lettered: Result<(), ()>) {
    let settlement = match dead_lettered {
        Ok(()) => Settlement::Ack,
        Err(()) => Settlement::Reject,
    };
    channels
        .acks
        .settle(delivery.delivery_tag, settlement)
        .await;
}

pub(crate) fn decode(delivery: &AmqpDelivery, codec: Codec) -> Result<Message, Error> {
    if let Some(content_type) = delivery.properties.content_type()
        && !is_json(content_type.as_str())
    {
        return Err(Error::invalid(format!(
            "content type `{content_type}` is not {APPLICATION_JSON}"
        )));
    }
    let transport_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(ShortString::as_str);
    codec.decode_received(&delivery.data, transport_id)
}

async fn send_reply(
    channel: &Channel,
    request: &AmqpDelivery,
    to: &ShortString,
    answer: Result<&Message, &Error>,
    codec: Codec,
) {
    let mut properties = BasicProperties::default().with_content_type(APPLICATION_JSON.into());
    if let Some(correlation) = request.properties.correlation_id() {
        properties = properties.with_correlation_id(correlation.clone());
    }
    let error_body = |properties: BasicProperties, error: &Error| {
        let mut headers = FieldTable::default();
        headers.insert(
            ERROR_HEADER.into(),
            AMQPValue::LongString(error.kind().as_str().into()),
        );
        (properties.with_headers(headers), ErrorBody::json(error))
    };
    let (properties, body) = match answer {
        Ok(reply) => match codec.encode_vec(reply) {
            Ok(body) => match ShortString::try_new(reply.id()) {
                Ok(id) => (properties.with_message_id(id), body),
                Err(_) => (properties, body),
            },
            Err(error) => error_body(properties, &unsendable_reply(&error)),
        },
        Err(error) => error_body(properties, error),
    };
    let sent = channel
        .basic_publish(
            "".into(),
            to.clone(),
            BasicPublishOptions::default(),
            &body,
            properties,
        )
        .await;
    if let Err(error) = sent {
        tracing::warn!(%error, "could not send a reply; the caller will time out");
    }
}

/// Publishes the delivery to the dead-letter exchange with the reason in
/// headers and waits for the broker's confirm. `Err` means it is not stored:
/// the caller rejects the delivery instead, and the queue's own
/// dead-letter exchange catches it (without our reason).
async fn dead_letter(channel: &Channel, delivery: &AmqpDelivery, error: &Error) -> Result<(), ()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(error.to_string().into()),
    );
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(error.kind().as_str().into()),
    );
    headers.insert(
        "x-stage7-routing-key".into(),
        AMQPValue::LongString(delivery.routing_key.as_str().into()),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    tracing::warn!(routing_key = delivery.routing_key.as_str(), %error, "dead-lettering a message");
    let published = channel
        .basic_publish(
            DEAD_LETTER_EXCHANGE.into(),
            delivery.routing_key.clone(),
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await;
    let stored = match published {
        Ok(confirm) => Settle::new(confirm, None, None)
            .await
            .ok()
            .and_then(|c| confirmed(c, DEAD_LETTER_EXCHANGE).ok()),
        Err(_) => None,
    };
    stored.ok_or(())
}
