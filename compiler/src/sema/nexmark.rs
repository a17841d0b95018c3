//! The fixed schemas of the built-in Nexmark generator's three streams. Field names and order
//! match the runtime's `nexmark::{Person, Auction, Bid}` structs.

use super::types::{Field, Schema, Type};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NexmarkStream {
    Person,
    Auction,
    Bid,
}

impl NexmarkStream {
    pub const NAMES: [&'static str; 3] = ["person", "auction", "bid"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "person" => Some(NexmarkStream::Person),
            "auction" => Some(NexmarkStream::Auction),
            "bid" => Some(NexmarkStream::Bid),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NexmarkStream::Person => "person",
            NexmarkStream::Auction => "auction",
            NexmarkStream::Bid => "bid",
        }
    }

    /// The runtime struct that carries this stream's records.
    pub fn rust_type(self) -> &'static str {
        match self {
            NexmarkStream::Person => "Person",
            NexmarkStream::Auction => "Auction",
            NexmarkStream::Bid => "Bid",
        }
    }

    pub fn schema(self) -> Schema {
        use Type::*;
        let fields: &[(&str, Type)] = match self {
            NexmarkStream::Person => &[
                ("id", I64),
                ("name", String),
                ("email_address", String),
                ("credit_card", String),
                ("city", String),
                ("state", String),
                ("date_time", Timestamp),
                ("extra", String),
            ],
            NexmarkStream::Auction => &[
                ("id", I64),
                ("item_name", String),
                ("description", String),
                ("initial_bid", I64),
                ("reserve", I64),
                ("date_time", Timestamp),
                ("expires", Timestamp),
                ("seller", I64),
                ("category", I64),
                ("extra", String),
            ],
            NexmarkStream::Bid => &[
                ("auction", I64),
                ("bidder", I64),
                ("price", I64),
                ("channel", String),
                ("url", String),
                ("date_time", Timestamp),
                ("extra", String),
            ],
        };
        Schema {
            fields: fields.iter().map(|(n, t)| Field::new(n, *t)).collect(),
        }
    }
}
