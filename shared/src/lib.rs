//! Everything the appforge client and daemon must agree on: the protocol's
//! messages, the frame codec, the default paths and the error codes.

pub mod codec;
pub mod error;
pub mod paths;
pub mod protocol;

pub use error::{ErrorCode, WireError};
