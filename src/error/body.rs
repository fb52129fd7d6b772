//! [`ErrorBody`]: an error as the JSON body of a reply, over HTTP and AMQP.

use super::{Error, ErrorClass, ErrorKind};

/// The JSON body of an error reply, over HTTP and AMQP alike:
/// `{"error": "...", "kind": "...", "class": "..."}`. `class` is ours: peers
/// that send only `error` and `kind` are understood.
///
/// ```
/// use stage7_transport::{Error, ErrorBody, ErrorKind};
///
/// let body = ErrorBody::from(&Error::rejected("no such mission"));
/// let json = serde_json::to_string(&body).unwrap();
/// assert_eq!(json, r#"{"error":"no such mission","kind":"handler","class":"rejected"}"#);
/// let back: ErrorBody = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.kind(), Some(ErrorKind::Handler));
/// assert!(back.into_error().is_rejected());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// [`ErrorKind::as_str`], for programs.
    #[serde(default)]
    pub kind: String,
    /// [`ErrorClass::as_str`]: what the sender may do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

impl ErrorBody {
    /// The kind, if the peer sent one this crate knows.
    pub fn kind(&self) -> Option<ErrorKind> {
        ErrorKind::parse(&self.kind)
    }

    /// The error this reply reports, with its class, or the class its kind
    /// implies ([`ErrorKind::remote_class`]) when the peer sent none; a
    /// reply without a known kind is a rejected
    /// [`Handler`](ErrorKind::Handler) error.
    pub fn into_error(self) -> Error {
        let kind = self.kind().unwrap_or(ErrorKind::Handler);
        let class = self
            .class
            .as_deref()
            .and_then(ErrorClass::parse)
            .unwrap_or(kind.remote_class());
        Error::new(kind, class, format!("peer replied: {}", self.error))
    }

    /// `error` as the JSON body of an error reply.
    pub(crate) fn json(error: &Error) -> Vec<u8> {
        serde_json::to_vec(&Self::from(error))
            .unwrap_or_else(|_| br#"{"error":"internal error","kind":"protocol"}"#.to_vec())
    }
}

impl From<&Error> for ErrorBody {
    fn from(error: &Error) -> Self {
        Self {
            error: error.detail().to_owned(),
            kind: error.kind().as_str().to_owned(),
            class: Some(error.class().as_str().to_owned()),
        }
    }
}
