use roomgate_domain::AdmissionError;
use thiserror::Error;

/// What any admission store can answer besides success.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The request was refused by the admission rules; nothing changed.
    #[error(transparent)]
    Refused(#[from] AdmissionError),
    /// The backing store could not be reached; nothing changed. Retrying later may succeed.
    #[error("admission store unavailable: {0}")]
    Unavailable(String),
}
