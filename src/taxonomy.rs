//! The fixed vocabulary shared by rule files and verdicts: classes, topics, actions and
//! script languages. Rule files name them as snake_case strings; unknown names are errors.

use serde::{Deserialize, Serialize};

/// What a comment is, for the people running the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A genuine buyer complaint: worth a public save on mic.
    Complaint,
    /// Malicious: abuse, diversion, smear, spam. Keep off the mic.
    Attack,
    /// Everything else, including pre-purchase questions and praise.
    Neutral,
}

impl Class {
    /// Parses a rule-file name (`complaint`, `attack`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "complaint" => Self::Complaint,
            "attack" => Self::Attack,
            "neutral" => Self::Neutral,
            _ => return None,
        })
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complaint => "complaint",
            Self::Attack => "attack",
            Self::Neutral => "neutral",
        }
    }
}

macro_rules! topics {
    ($($(#[$doc:meta])* $variant:ident = $name:literal : $class:ident),* $(,)?) => {
        /// What a complaint or an attack is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[serde(rename_all = "snake_case")]
        pub enum Topic { $($(#[$doc])* $variant),* }

        impl Topic {
            /// Every topic, in declaration order (index = `self as usize`).
            pub const ALL: &'static [Topic] = &[$(Topic::$variant),*];

            /// Parses a rule-file name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Topic::$variant),)* _ => None }
            }

            /// The snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(Topic::$variant => $name),* }
            }

            /// The class this topic belongs to.
            pub fn class(self) -> Class {
                match self { $(Topic::$variant => Class::$class),* }
            }
        }
    };
}

topics! {
    /// Crack, broken clasp, stone fell out, tarnish or fading after wear, broken on arrival.
    Defect = "defect": Complaint,
    /// Colour, size or shine differs from what the stream showed.
    NotAsShown = "not_as_shown": Complaint,
    /// Fake, not real gold or silver, certificate doubts, from a buyer.
    Authenticity = "authenticity": Complaint,
    /// Ring or bracelet size does not fit.
    SizeFit = "size_fit": Complaint,
    /// Late, lost or damaged parcel.
    Logistics = "logistics": Complaint,
    /// No reply from customer service, refund refused or slow.
    AfterSales = "after_sales": Complaint,
    /// The buyer asks for a refund or return.
    RefundRequest = "refund_request": Complaint,
    /// Insults at the streamer or viewers.
    Insult = "insult": Attack,
    /// Competitors pulling buyers away: contact handles, numbers, other shops, links.
    Diversion = "diversion": Attack,
    /// Unfounded scam or fake claims with no purchase context.
    Smear = "smear": Attack,
    /// Spam and self-promotion.
    Spam = "spam": Attack,
    /// Threats of violence or harm.
    Threat = "threat": Attack,
    /// Hate against a group.
    Hate = "hate": Attack,
}

/// What the floor manager should do with a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A genuine complaint worth a public save: invite the buyer to co-stream.
    InviteCostream,
    /// Reply with a script on air (a weaker complaint).
    ScriptedReply,
    /// Attack: a fixed script steering the writer to private resolution, off air.
    PrivateResolution,
    /// Attack: mute the user and review.
    MuteReview,
    /// Nothing to do.
    None,
}

impl Action {
    /// Parses a rule-file name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "invite_costream" => Self::InviteCostream,
            "scripted_reply" => Self::ScriptedReply,
            "private_resolution" => Self::PrivateResolution,
            "mute_review" => Self::MuteReview,
            "none" => Self::None,
            _ => return None,
        })
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InviteCostream => "invite_costream",
            Self::ScriptedReply => "scripted_reply",
            Self::PrivateResolution => "private_resolution",
            Self::MuteReview => "mute_review",
            Self::None => "none",
        }
    }
}

/// The language of a script (and of the comment it answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Parses a rule-file name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "zh" => Self::Zh,
            "en" => Self::En,
            _ => return None,
        })
    }

    /// The rule-file name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }
}

/// Who decided a verdict's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The rules alone (no model loaded, or the model leaned the other way without being sure).
    #[default]
    Rules,
    /// The model: it raised what the rules missed, or dropped a weak rule hit.
    Model,
    /// The rules decided and the model agreed.
    Both,
    /// A floor manager reported a comment liveguard missed.
    Floor,
}

impl Source {
    /// Every source, for metrics.
    pub const ALL: [Source; 4] = [Source::Rules, Source::Model, Source::Both, Source::Floor];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Model => "model",
            Self::Both => "both",
            Self::Floor => "floor",
        }
    }
}
