//! [`EntityBuilder`]: an entity's settings, and starting it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Entity, Inner};
use crate::amqp::{AmqpTransport, Subscriber};
use crate::config::Config;
use crate::defaults;
use crate::error::{Error, Result};
use crate::handler::BoxHandler;
use crate::http::{Component, HttpServer, PostOfficeClient, ResolverChain, StaticResolver};
use crate::layer::dedup::DedupLayer;
use crate::layer::retry::{RetryPolicy, RetryPolicyBuilder};
use crate::message::Codec;
use crate::route::Route;
use crate::stack::{BranchBuilder, standard_stack};
use crate::url::parse_base;

/// How long [`EntityBuilder::start`] waits for a broker that answers to
/// have the entity's queue consumed, so the first calls already use AMQP.
const START_WAIT: Duration = Duration::from_secs(5);

/// Settings for an [`Entity`]; see [`Entity::builder`].
pub struct EntityBuilder {
    component_type: String,
    id: Option<String>,
    handler: BoxHandler,
    listen: String,
    advertise: Option<String>,
    config: Config,
    routes: Vec<(String, String)>,
    register: bool,
    work_queue: bool,
    queue_expires: Option<Option<Duration>>,
    prefetch: u16,
    amqp_branch: BranchBuilder,
    http_branch: BranchBuilder,
    retry: RetryPolicyBuilder,
    grace: Duration,
}

impl EntityBuilder {
    pub(super) fn new(component_type: String, handler: BoxHandler) -> Self {
        Self {
            component_type,
            id: None,
            handler,
            listen: "127.0.0.1:0".to_owned(),
            advertise: None,
            config: Config::default(),
            routes: Vec::new(),
            register: true,
            work_queue: false,
            queue_expires: None,
            prefetch: defaults::PREFETCH,
            amqp_branch: BranchBuilder::new(Route::Amqp),
            http_branch: BranchBuilder::new(Route::Http),
            retry: RetryPolicy::builder(),
            grace: defaults::SHUTDOWN_GRACE,
        }
    }

    /// The entity's id. Default: `{type lowercased}-{random}`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Where the HTTP endpoint listens. Default `127.0.0.1:0` (any free
    /// port on loopback).
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = address.into();
        self
    }

    /// The base URL peers use to reach the endpoint, when it differs from
    /// `http://{listen address}` (behind NAT, in containers). The entity's
    /// own calls to itself over HTTP use it too, ahead of the
    /// configuration's routes and the PostOffice (an `https://` URL, which
    /// our HTTP client does not speak, leaves them to AMQP). Default: the
    /// listen address.
    pub fn advertise(mut self, url: impl Into<String>) -> Self {
        self.advertise = Some(url.into());
        self
    }

    /// Broker URL, PostOffice, static routes, token, budgets. Default
    /// [`Config::default`]; use [`Config::from_env`] in services.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// A static HTTP route: calls to `recipient` that go over HTTP go to
    /// `url`. Tried before the configuration's routes and the PostOffice.
    pub fn route(mut self, recipient: impl Into<String>, url: impl Into<String>) -> Self {
        self.routes.push((recipient.into(), url.into()));
        self
    }

    /// Whether to register with the configured PostOffice. Default true
    /// (it only happens when [`Config::postoffice_url`] is set).
    pub fn register(mut self, register: bool) -> Self {
        self.register = register;
        self
    }

    /// Share messages for the component type with other instances through
    /// one work queue. Default off (every instance receives them).
    pub fn work_queue(mut self, shared: bool) -> Self {
        self.work_queue = shared;
        self
    }

    /// How long the broker keeps the entity's queue once nothing consumes
    /// it (`x-expires`, 1 ms to 2³² − 1 ms), dropping what it holds; `None`
    /// keeps it for ever, so messages wait for the entity's return.
    /// Default: for ever when [`id`](Self::id) is given,
    /// [`EPHEMERAL_QUEUE_EXPIRY`](crate::defaults::EPHEMERAL_QUEUE_EXPIRY) when the id is generated (no later
    /// instance has that id, so nothing would ever consume the queue).
    ///
    /// The expiry is fixed when the queue is created: a queue that already
    /// exists keeps the arguments it was declared with.
    pub fn queue_expires(mut self, unused_for: Option<Duration>) -> Self {
        self.queue_expires = Some(unused_for);
        self
    }

    /// AMQP messages handled at once. Default
    /// [`PREFETCH`](crate::defaults::PREFETCH).
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Settings of the AMQP branch. Default: [`BranchBuilder::new`] with
    /// the configuration's attempt timeout.
    pub fn amqp_branch(mut self, branch: BranchBuilder) -> Self {
        self.amqp_branch = branch;
        self
    }

    /// Settings of the HTTP branch. Default: [`BranchBuilder::new`] with the
    /// configuration's attempt timeout.
    pub fn http_branch(mut self, branch: BranchBuilder) -> Self {
        self.http_branch = branch;
        self
    }

    /// The retry policy of outgoing calls. Default [`RetryPolicy::builder`].
    pub fn retry(mut self, retry: RetryPolicyBuilder) -> Self {
        self.retry = retry;
        self
    }

    /// How long [`Entity::shutdown`] lets running handlers finish. Default
    /// [`SHUTDOWN_GRACE`](crate::defaults::SHUTDOWN_GRACE).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts serving, consuming and (if configured) registering; returns
    /// once the endpoint listens and — if the broker answers — the queue is
    /// consumed. A broker that does not answer is not an error: calls use
    /// HTTP until it does.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) for invalid settings, or
    /// [`Unavailable`](crate::ErrorKind::Unavailable) when the endpoint cannot
    /// listen.
    pub async fn start(self) -> Result<Entity> {
        let config = self.config;
        let queue_expires = self.queue_expires.unwrap_or_else(|| {
            self.id
                .is_none()
                .then_some(defaults::EPHEMERAL_QUEUE_EXPIRY)
        });
        if let Some(unused) = queue_expires {
            crate::amqp::expiry_ms(unused)?;
        }
        let id = self.id.unwrap_or_else(|| {
            let random = crate::message::new_id();
            format!(
                "{}-{}",
                self.component_type.to_lowercase(),
                &random[random.len() - 8..]
            )
        });
        let dedup = DedupLayer::new();

        let mut server = HttpServer::builder()
            .dedup(dedup.clone())
            .max_body_size(config.max_message_size);
        if let Some(token) = &config.http_token {
            server = server.token(token.clone());
        }
        let server = server.bind(&self.listen, self.handler.clone()).await?;
        let url = self
            .advertise
            .unwrap_or_else(|| format!("http://{}", server.local_addr()));

        let amqp = AmqpTransport::builder(config.rabbitmq_url.expose())
            .connection_name(format!("{}:{id}", self.component_type))
            .codec(Codec::new(config.max_message_size))
            .build()?;
        let mut routes = self.routes;
        match parse_base(&url) {
            // After the caller's own routes: the entity reaches itself over
            // HTTP too, as its peers would.
            Ok(_) => routes.push((id.clone(), url.clone())),
            Err(error) => tracing::warn!(
                url,
                %error,
                "the advertised URL is not one our HTTP client can use; calls to this entity \
                 from itself go over AMQP only"
            ),
        }
        let resolver = ResolverChain::new()
            .or(StaticResolver::new(routes)?)
            .or(ResolverChain::from_config(&config)?);
        let stack = standard_stack(
            amqp.clone(),
            resolver,
            &config,
            self.amqp_branch,
            self.http_branch,
            self.retry,
        )?;
        let registration = match (&config.postoffice_url, self.register) {
            (Some(postoffice), true) => {
                let mut client = PostOfficeClient::builder(postoffice);
                if let Some(token) = &config.http_token {
                    client = client.token(token.clone());
                }
                let client = client
                    .build()
                    .map_err(|e| Error::config(format!("PostOffice: {}", e.detail())))?;
                Some((client, Component::new(&id, &self.component_type, &url)))
            }
            _ => None,
        };

        // Last, once nothing else can fail: a subscriber is not stopped by
        // dropping it.
        let mut subscription = Subscriber::builder(&amqp, &id, &self.component_type, self.handler)
            .dedup(dedup)
            .work_queue(self.work_queue)
            .prefetch(self.prefetch);
        if let Some(unused_for) = queue_expires {
            subscription = subscription.expires(unused_for);
        }
        let subscriber = subscription.start()?;
        if tokio::time::timeout(START_WAIT, amqp.first_attempt()).await == Ok(true) {
            let _ = tokio::time::timeout(START_WAIT, subscriber.ready()).await;
        }
        let registration = registration
            .map(|(client, component)| tokio::spawn(client.register_until_accepted(component)));
        tracing::info!(
            id,
            r#type = self.component_type,
            url,
            amqp = amqp.is_connected(),
            "entity started"
        );
        Ok(Entity {
            inner: Arc::new(Inner {
                id,
                component_type: self.component_type,
                url,
                stack,
                amqp,
                server: Mutex::new(Some(server)),
                subscriber: Mutex::new(Some(subscriber)),
                registration: Mutex::new(registration),
                grace: self.grace,
            }),
        })
    }
}

impl fmt::Debug for EntityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntityBuilder")
            .field("component_type", &self.component_type)
            .field("id", &self.id)
            .field("listen", &self.listen)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
