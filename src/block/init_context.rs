//! [`InitContext`]: what a block's `init` is given. Its own file because
//! `init_blocks` builds it and the `Block` trait takes it.

use crate::block::config::RuntimeConfig;
use crate::block::value::Value;

/// What a block sees in its [`init`](crate::block::Block::init): its own
/// part of the configuration, the process's configuration shared by every
/// block, and which block it is.
///
/// The memphis Go adapter hands `Init` one `conf any`, and a block that
/// wants the whole process's settings asks the server's
/// `Configurator.Configuration()`. Here both travel together:
/// [`conf`](Self::conf) is the block's own part
/// ([`BlockConfig::with_config`](crate::block::BlockConfig::with_config)),
/// [`process`](Self::process) the process's
/// ([`RuntimeConfig::with_process`]), and [`runtime`](Self::runtime) the
/// whole configuration, every block's part included.
///
/// ```
/// use std::collections::BTreeMap;
/// use syncmq::block::{init_blocks, Block, BlockConfig, Controller, InitContext, Registry, RuntimeConfig, Value};
///
/// struct Reader;
/// impl Block for Reader {
///     fn init(&self, init: &InitContext<'_>) -> syncmq::Result<()> {
///         let site = init.process().get("site").and_then(Value::as_str).unwrap_or("?");
///         let port = init.conf().get("port").and_then(Value::as_i64).unwrap_or(7000);
///         println!("{} reads port {port} at site {site}", init.responsibility());
///         Ok(())
///     }
///     fn run(&self, _: Controller) {}
///     fn finish(&self) -> syncmq::Result<()> { Ok(()) }
/// }
///
/// # fn main() -> syncmq::Result<()> {
/// let mut registry = Registry::new();
/// registry.register("reader", |_| Reader)?;
/// let process = BTreeMap::from([("site".to_string(), Value::from("eu-1"))]);
/// let conf = BTreeMap::from([("port".to_string(), Value::from(7001))]);
/// let config = RuntimeConfig::new()
///     .with_process(process)
///     .with_block(BlockConfig::new("reader").with_config(conf));
/// init_blocks(&config, &registry)?.finish()
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct InitContext<'a> {
    runtime: &'a RuntimeConfig,
    index: usize,
}

impl<'a> InitContext<'a> {
    /// The context of block `index` of `runtime`.
    pub(crate) fn new(runtime: &'a RuntimeConfig, index: usize) -> Self {
        InitContext { runtime, index }
    }

    /// The block's own configuration; `Value::Null` when it has none.
    pub fn conf(&self) -> &'a Value {
        self.runtime.blocks()[self.index].config()
    }

    /// The process's configuration, shared by every block; `Value::Null`
    /// when none was given.
    pub fn process(&self) -> &'a Value {
        self.runtime.process()
    }

    /// The whole configuration: the process's part, every block's, the
    /// deadlines.
    pub fn runtime(&self) -> &'a RuntimeConfig {
        self.runtime
    }

    /// The block's name: its kind, the key of its factory.
    pub fn name(&self) -> &'a str {
        self.runtime.blocks()[self.index].name()
    }

    /// The block's responsibility: this instance.
    pub fn responsibility(&self) -> &'a str {
        self.runtime.blocks()[self.index].responsibility()
    }
}
