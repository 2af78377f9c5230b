//! JSON payloads (feature `json`): [`Message::encode_json`],
//! [`Message::decode_json`] and [`Delivery::decode_json`], beside the
//! MessagePack pair [`Message::encode`] / [`Message::decode`], for services
//! whose other side speaks JSON. In a file of its own because it is an
//! optional format on top of the message, not part of what a message is.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::message::{Delivery, Message};

/// The `content-type` header a JSON message carries.
const JSON: &str = "application/json";

impl Message {
    /// A message whose body is `value` as JSON, with the header
    /// `content-type: application/json` so that a consumer in any language
    /// knows how to read it.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use syncmq::Message;
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Order { id: u32 }
    ///
    /// let msg = Message::encode_json(&Order { id: 7 })?;
    /// assert_eq!(msg.body(), br#"{"id":7}"#);
    /// assert_eq!(msg.header("content-type"), Some("application/json"));
    /// assert_eq!(msg.decode_json::<Order>()?, Order { id: 7 });
    /// # Ok::<(), syncmq::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when `value`'s `Serialize` implementation fails, or
    /// it has a map with keys JSON cannot hold.
    pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(|e| Error::codec("encode JSON", e))?;
        Ok(Message::new(body).with_header("content-type", JSON))
    }

    /// Decodes the body as one JSON `T`, whoever wrote it. The header is
    /// not required: a JSON body from a producer that set none reads too.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] naming the line and column when the body is not
    /// one JSON `T` (trailing bytes other than whitespace included).
    pub fn decode_json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.body()).map_err(|e| Error::codec("decode a JSON body", e))
    }
}

impl Delivery {
    /// Decodes the body as one JSON `T`, as [`Message::decode_json`].
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the body is not one JSON `T`.
    pub fn decode_json<T: DeserializeOwned>(&self) -> Result<T> {
        self.message().decode_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Order {
        id: u32,
        items: Vec<String>,
    }

    #[test]
    fn json_round_trips_through_a_message_and_a_delivery() {
        let order = Order {
            id: 7,
            items: vec!["tea".into()],
        };
        let msg = Message::encode_json(&order).unwrap();
        assert_eq!(msg.body(), br#"{"id":7,"items":["tea"]}"#);
        let delivery = Delivery::without_acker(msg);
        assert_eq!(delivery.decode_json::<Order>().unwrap(), order);
    }

    #[test]
    fn a_body_that_is_not_the_json_asked_for_is_a_codec_error() {
        for body in [
            &b"{"[..],
            b"{\"id\": \"seven\", \"items\": []}",
            b"{\"id\":1,\"items\":[]} x",
            b"\xff\xfe",
        ] {
            match Message::new(body.to_vec()).decode_json::<Order>() {
                Err(Error::Codec { what, .. }) => assert_eq!(what, "decode a JSON body"),
                other => panic!("{body:?}: {other:?}"),
            }
        }
        // A MessagePack body is not JSON either.
        let packed = Message::encode(&Order {
            id: 1,
            items: vec![],
        })
        .unwrap();
        assert!(packed.decode_json::<Order>().is_err());
    }
}
