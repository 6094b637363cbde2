//! Workflows that span the lower layers, called by both front doors (the
//! socket's handlers and the dashboard's API).

pub mod apps;
pub mod history;
pub mod news;
pub mod orders;
pub mod settings;
pub mod versions;
