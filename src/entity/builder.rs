//! [`EntityBuilder`]: an entity's settings, and starting it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::advertise::advertised_url;
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
use crate::tls::TlsIdentity;
use crate::url::parse_base;

/// How long [`EntityBuilder::start`] waits for a broker that answers to
/// have the entity's queue consumed, so the first calls already use AMQP.
const START_WAIT: Duration = Duration::from_secs(5);

/// Settings for an [`Entity`]; see [`Entity::builder`].
pub struct EntityBuilder {
    component_type: String,
    id: Option<String>,
    handler: BoxHandler,
    listen: Option<String>,
    advertise: Option<String>,
    config: Config,
    routes: Vec<(String, String)>,
    register: bool,
    work_queue: bool,
    queue_expires: Option<Option<Duration>>,
    queue_max_length: Option<u32>,
    reply_queues: Option<Vec<String>>,
    prefetch: u16,
    amqp_branch: BranchBuilder,
    http_branch: BranchBuilder,
    retry: RetryPolicyBuilder,
    grace: Duration,
    tls: Option<TlsIdentity>,
}

impl EntityBuilder {
    pub(super) fn new(component_type: String, handler: BoxHandler) -> Self {
        Self {
            component_type,
            id: None,
            handler,
            listen: None,
            advertise: None,
            config: Config::default(),
            routes: Vec::new(),
            register: true,
            work_queue: false,
            queue_expires: None,
            queue_max_length: Some(defaults::AMQP_QUEUE_MAX_LENGTH),
            reply_queues: None,
            prefetch: defaults::PREFETCH,
            amqp_branch: BranchBuilder::new(Route::Amqp),
            http_branch: BranchBuilder::new(Route::Http),
            retry: RetryPolicy::builder(),
            grace: defaults::SHUTDOWN_GRACE,
            tls: None,
        }
    }

    /// The entity's id. Default: `{type lowercased}-{random}`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Where the HTTP endpoint listens, `host:port`; port 0 takes any free
    /// one. Wins over [`Config::http_listen`] (`STAGE7_HTTP_LISTEN`).
    /// Default [`SERVER_LISTEN`](crate::defaults::SERVER_LISTEN), loopback:
    /// peers on other hosts need `0.0.0.0:{port}` or a routable address.
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = Some(address.into());
        self
    }

    /// The base URL peers use to reach the endpoint — registered with the
    /// PostOffice, and used by the entity's own calls to itself over HTTP,
    /// ahead of the configuration's routes and the PostOffice. Wins over
    /// [`Config::http_advertise`]
    /// (`STAGE7_HTTP_ADVERTISE`). Set it when peers reach this host by
    /// another name or address than it listens on (NAT, a service name,
    /// several networks).
    ///
    /// Default: `http://{listen address}` (`https://` when the endpoint
    /// serves TLS), with a wildcard listen address
    /// (`0.0.0.0`, `[::]`) replaced by the host's primary address — the one
    /// it sends from on its default route, which in a container or a pod is
    /// the address its peers reach it at; never the wildcard, which no peer
    /// can connect to. The host's address rather than its name: a
    /// container's or pod's name does not resolve for its peers everywhere
    /// (a Kubernetes pod's, for one), its address does.
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
    /// Default: [`AMQP_QUEUE_EXPIRY`](crate::defaults::AMQP_QUEUE_EXPIRY)
    /// (7 days) when [`id`](Self::id) is given — a service back within a
    /// week finds its messages waiting, the queue of an id nobody uses any
    /// more stops collecting the type's and `all`'s messages —
    /// [`EPHEMERAL_QUEUE_EXPIRY`](crate::defaults::EPHEMERAL_QUEUE_EXPIRY) when the id is generated (no later
    /// instance has that id, so nothing would ever consume the queue). See
    /// [`SubscriberBuilder::expires`](crate::amqp::SubscriberBuilder::expires)
    /// for the work queue's.
    ///
    /// The expiry is fixed when the queue is created: a queue that already
    /// exists keeps the arguments it was declared with.
    pub fn queue_expires(mut self, unused_for: impl Into<Option<Duration>>) -> Self {
        self.queue_expires = Some(unused_for.into());
        self
    }

    /// Ready messages the entity's queue (and work queue) hold before the
    /// oldest go to the dead letters; `None` for no bound. Default
    /// [`AMQP_QUEUE_MAX_LENGTH`](crate::defaults::AMQP_QUEUE_MAX_LENGTH);
    /// see [`SubscriberBuilder::max_length`](crate::amqp::SubscriberBuilder::max_length).
    pub fn queue_max_length(mut self, messages: impl Into<Option<u32>>) -> Self {
        self.queue_max_length = messages.into();
        self
    }

    /// The reply queues the entity answers AMQP requests on besides direct
    /// reply-to. Default
    /// [`AMQP_REPLY_QUEUES`](crate::defaults::AMQP_REPLY_QUEUES); see
    /// [`SubscriberBuilder::reply_queues`](crate::amqp::SubscriberBuilder::reply_queues).
    pub fn reply_queues<P: Into<String>>(mut self, patterns: impl IntoIterator<Item = P>) -> Self {
        self.reply_queues = Some(patterns.into_iter().map(Into::into).collect());
        self
    }

    /// AMQP messages handled at once, from the entity's queue and its work
    /// queue together. Default [`PREFETCH`](crate::defaults::PREFETCH).
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

    /// Serves the HTTP endpoint over `https://` with `identity`'s
    /// certificate and key. Default: [`Config::tls_identity`]
    /// (`STAGE7_TLS_CERT_FILE`, `STAGE7_TLS_KEY_FILE`), else plain
    /// `http://`.
    pub fn tls(mut self, identity: TlsIdentity) -> Self {
        self.tls = Some(identity);
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
        let queue_expires = self.queue_expires.unwrap_or(Some(if self.id.is_none() {
            defaults::EPHEMERAL_QUEUE_EXPIRY
        } else {
            defaults::AMQP_QUEUE_EXPIRY
        }));
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
        for token in config.http_token.iter().chain(&config.http_accepted_tokens) {
            server = server.token(token.clone());
        }
        let tls = self.tls.or_else(|| config.tls_identity.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        if let Some(identity) = tls {
            server = server.tls(identity);
        }
        let listen = self
            .listen
            .or_else(|| config.http_listen.clone())
            .unwrap_or_else(|| defaults::SERVER_LISTEN.to_owned());
        let server = server.bind(&listen, self.handler.clone()).await?;
        let url = self
            .advertise
            .or_else(|| config.http_advertise.clone())
            .unwrap_or_else(|| advertised_url(scheme, server.local_addr()));

        let mut amqp = AmqpTransport::builder(config.rabbitmq_url.expose())
            .connection_name(format!("{}:{id}", self.component_type))
            .codec(Codec::new(config.max_message_size));
        if let Some(ca) = &config.tls_ca {
            amqp = amqp.tls_ca(ca.clone());
        }
        let amqp = amqp.build()?;
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
                let mut client = PostOfficeClient::builder(postoffice)
                    .allow_plaintext_token(config.allow_plaintext_token);
                if let Some(token) = &config.http_token {
                    client = client.token(token.clone());
                }
                if let Some(ca) = &config.tls_ca {
                    client = client.tls_ca(ca.clone());
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
            .prefetch(self.prefetch)
            .expires(queue_expires)
            .max_length(self.queue_max_length);
        if let Some(patterns) = self.reply_queues {
            subscription = subscription.reply_queues(patterns);
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
