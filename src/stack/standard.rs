//! The standard stack: AMQP first, HTTP second, configured from a
//! [`Config`]. What every [`Entity`](crate::Entity) calls through, and what
//! a service that only sends starts from.

use super::{BranchBuilder, Stack};
use crate::amqp::AmqpTransport;
use crate::config::Config;
use crate::error::Result;
use crate::http::{HttpTransport, ResolverChain};
use crate::layer::retry::{RetryPolicy, RetryPolicyBuilder};
use crate::route::Route;

/// The standard stack: AMQP first, HTTP second.
pub type StandardStack = Stack<AmqpTransport, HttpTransport>;

impl StandardStack {
    /// AMQP first over `amqp`, HTTP second, with the routes, PostOffice,
    /// token and budgets of `config`: the stack of a service that only sends.
    ///
    /// ```no_run
    /// use stage7_transport::{AmqpTransport, Config, StandardStack};
    ///
    /// let config = Config::from_env()?;
    /// let amqp = AmqpTransport::builder(config.rabbitmq_url.expose()).build()?;
    /// let stack = StandardStack::standard(amqp, &config)?;
    /// # Ok::<(), stage7_transport::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming an unusable setting.
    pub fn standard(amqp: AmqpTransport, config: &Config) -> Result<Self> {
        standard_stack(
            amqp,
            ResolverChain::from_config(config)?,
            config,
            BranchBuilder::new(Route::Amqp),
            BranchBuilder::new(Route::Http),
            RetryPolicy::builder(),
        )
    }
}

/// The standard stack with the resolver, branches and retry policy given:
/// an entity's, which also routes to itself and lets its builder tune the
/// branches.
pub(crate) fn standard_stack(
    amqp: AmqpTransport,
    resolver: ResolverChain,
    config: &Config,
    amqp_branch: BranchBuilder,
    http_branch: BranchBuilder,
    retry: RetryPolicyBuilder,
) -> Result<StandardStack> {
    let http = HttpTransport::builder(resolver).config(config).build()?;
    Stack::builder(amqp)
        .primary_branch(amqp_branch.default_attempt_timeout(config.attempt_timeout))
        .secondary(http)
        .secondary_branch(http_branch.default_attempt_timeout(config.attempt_timeout))
        .deadline(config.deadline)
        .retry(retry)
        .build()
}
