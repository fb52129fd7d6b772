//! The message `type`: one list of the values Stage7's services use, from
//! which [`MessageType`], its wire text and its parser are generated.

use std::fmt;

macro_rules! message_types {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal,)*) => {
        /// The `type` of a message: every value Stage7's services use, and
        /// any other string kept verbatim in [`Other`](MessageType::Other).
        ///
        /// Matching is exact: `REGISTER` is [`Register`](MessageType::Register),
        /// `register` is `Other("register")`, so a round trip never changes
        /// the text.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum MessageType {
            $($(#[$doc])* #[doc = concat!("`", $wire, "`")] $variant,)*
            /// Any type this crate does not name, kept verbatim.
            Other(Box<str>),
        }

        impl MessageType {
            /// The wire text of this type.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(other) => other,
                }
            }

            /// The type whose wire text is `text`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($wire => Self::$variant,)*
                    other => Self::Other(other.into()),
                }
            }
        }
    };
}

message_types! {
    Statement => "statement",
    Request => "request",
    Response => "response",
    Answer => "answer",
    AgentStatistics => "agentStatistics",
    Connect => "connect",
    Pause => "pause",
    Abort => "abort",
    Resume => "resume",
    Save => "save",
    Load => "load",
    ListMissions => "listMissions",
    ReconnectMission => "reconnectMission",
    WorkProductUpdate => "workProductUpdate",
    Register => "REGISTER",
    AgentUpdate => "agentUpdate",
    AgentMessage => "agentMessage",
    CreateMission => "createMission",
    StatusUpdate => "statusUpdate",
    StepFailure => "stepFailure",
    UserMessage => "userMessage",
    ChatRequest => "chatRequest",
    ChatResponse => "chatResponse",
    GenerateRequest => "generateRequest",
    GenerateResponse => "generateResponse",
    PluginExecution => "pluginExecution",
    PluginResult => "pluginResult",
    PluginError => "pluginError",
    PluginProgress => "pluginProgress",
    PluginCancel => "pluginCancel",
    CoordinationMessage => "coordinationMessage",
    UserInputResponse => "userInputResponse",
    SharedFilesUpdate => "sharedFilesUpdate",
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for MessageType {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage7_type_round_trips() {
        for text in [
            "statement",
            "request",
            "response",
            "answer",
            "agentStatistics",
            "connect",
            "pause",
            "abort",
            "resume",
            "save",
            "load",
            "listMissions",
            "reconnectMission",
            "workProductUpdate",
            "REGISTER",
            "agentUpdate",
            "agentMessage",
            "createMission",
            "statusUpdate",
            "stepFailure",
            "userMessage",
            "chatRequest",
            "chatResponse",
            "generateRequest",
            "generateResponse",
            "pluginExecution",
            "pluginResult",
            "pluginError",
            "pluginProgress",
            "pluginCancel",
            "coordinationMessage",
            "userInputResponse",
            "sharedFilesUpdate",
        ] {
            let kind = MessageType::parse(text);
            assert!(
                !matches!(kind, MessageType::Other(_)),
                "{text} is a named type"
            );
            assert_eq!(kind.as_str(), text);
        }
        assert_eq!(MessageType::parse("REGISTER"), MessageType::Register);
        assert_eq!(
            MessageType::parse("register"),
            MessageType::Other("register".into())
        );
    }
}
