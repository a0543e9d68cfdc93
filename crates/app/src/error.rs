//! The application's one error type, with a stable code for each kind.

use lifecert_crypto::CryptoError;
use lifecert_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input that cannot be accepted; `field` names what to fix.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// Not logged in, or the credentials are wrong (401).
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// Logged in but not allowed (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Too many attempts (429).
    #[error("{0}")]
    Locked(String),
    /// The request is valid but the pensioner's state does not allow it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A stable, snake_case code for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid { .. } => "invalid_input",
            AppError::NotFound(_) => "not_found",
            AppError::Unauthenticated { code, .. } | AppError::Forbidden { code, .. } => code,
            AppError::Locked(_) => "account_locked",
            AppError::Store(StoreError::Duplicate(_)) => "duplicate",
            AppError::Conflict { code, .. } => code,
            AppError::Crypto(CryptoError::WrongKey { .. }) => "wrong_master_key",
            AppError::Crypto(_) => "crypto_error",
            AppError::Store(_) => "database_error",
            AppError::Io(_) => "io_error",
            AppError::Corrupt(_) => "corrupt_data",
        }
    }
}
