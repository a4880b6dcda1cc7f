//! Single-use admission tickets: 256 random bits, URL-safe, compared in constant time.

use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::error::ValidationError;

const TICKET_BYTES: usize = 32;
/// Length of the text form: 32 bytes in unpadded base64url.
const TICKET_TEXT_LEN: usize = 43;

/// The secret a client presents on the WebSocket to confirm its reservation.
///
/// `Debug` shows only a short fingerprint so that tickets never reach logs.
#[derive(Clone, Eq)]
pub struct Ticket([u8; TICKET_BYTES]);

impl Ticket {
    /// A fresh ticket from the thread-local CSPRNG (ChaCha, seeded from the OS).
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Parses the text form; anything but exactly 43 base64url characters is refused.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("ticket", "ticket is not a well-formed ticket");
        if text.len() != TICKET_TEXT_LEN {
            return Err(invalid());
        }
        let mut bytes = [0u8; TICKET_BYTES];
        let written = URL_SAFE_NO_PAD
            .decode_slice(text, &mut bytes)
            .map_err(|_| invalid())?;
        if written != TICKET_BYTES {
            return Err(invalid());
        }
        Ok(Self(bytes))
    }

    /// The URL-safe text form handed to clients.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; TICKET_BYTES] {
        &self.0
    }
}

impl PartialEq for Ticket {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Hash for Ticket {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bytes are uniformly random, so hashing a prefix loses nothing and is cheaper.
        state.write(&self.0[..16]);
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticket({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_is_url_safe() {
        let ticket = Ticket::generate();
        let text = ticket.to_text();
        assert_eq!(text.len(), TICKET_TEXT_LEN);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Ticket::parse(&text).unwrap(), ticket);
    }

    #[test]
    fn malformed_text_is_refused() {
        let text = Ticket::generate().to_text();
        assert!(Ticket::parse("").is_err());
        assert!(Ticket::parse(&text[1..]).is_err());
        assert!(Ticket::parse(&format!("{text}A")).is_err());
        assert!(Ticket::parse(&text.replace(|_| true, "+")).is_err());
    }

    #[test]
    fn tickets_are_distinct_and_debug_hides_the_secret() {
        let a = Ticket::generate();
        let b = Ticket::generate();
        assert_ne!(a, b);
        let shown = format!("{a:?}");
        assert!(!shown.contains(&a.to_text()));
        assert!(shown.len() < 20);
    }
}
