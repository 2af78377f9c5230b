//! How logs and errors name a block: its label, and [`Error::Block`]
//! around a failure of one of its stages. Shared by the initialisation,
//! the running blocks and the runtime.

use crate::error::Error;

/// `` `responsibility` (kind) ``, or just `` `responsibility` `` when the
/// two are the same.
pub(crate) fn label(name: &str, responsibility: &str) -> String {
    if name == responsibility {
        format!("`{responsibility}`")
    } else {
        format!("`{responsibility}` ({name})")
    }
}

/// [`Error::Block`] for the block labelled `label`, failing in `stage`
/// (`init`, `run`, `finish`, `helper`).
pub(crate) fn block_error(label: &str, stage: &'static str, error: Error) -> Error {
    Error::Block {
        block: label.to_string(),
        stage,
        error: Box::new(error),
    }
}
