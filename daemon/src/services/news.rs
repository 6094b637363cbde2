//! News that an owner's projects changed (a project made or deleted, a
//! version saved), for pages that show them live. The news is the owner's
//! id alone: a page reads what changed through the requests it always
//! makes, under the same owner checks.

use tokio::sync::broadcast;

/// News waiting for a slow listener, at most; one that falls further
/// behind is told something changed.
const BACKLOG: usize = 64;

/// Where project news is told and heard; one a daemon.
#[derive(Debug)]
pub struct ProjectNews(broadcast::Sender<i64>);

impl Default for ProjectNews {
    fn default() -> ProjectNews {
        ProjectNews(broadcast::Sender::new(BACKLOG))
    }
}

impl ProjectNews {
    /// Tells whoever listens that `owner_id`'s projects changed.
    pub fn changed(&self, owner_id: i64) {
        // No listener (no page open) is no error.
        let _ = self.0.send(owner_id);
    }

    /// Listens for news of `owner_id`'s projects.
    pub fn listen(&self, owner_id: i64) -> OwnerNews {
        OwnerNews {
            owner_id,
            news: self.0.subscribe(),
        }
    }
}

/// News of one owner's projects, from [`ProjectNews::listen`].
pub struct OwnerNews {
    owner_id: i64,
    news: broadcast::Receiver<i64>,
}

impl OwnerNews {
    /// Returns at the owner's next project change, or when news was missed
    /// (it may have held one). Waits for ever once the daemon is going.
    pub async fn changed(&mut self) {
        loop {
            match self.news.recv().await {
                Ok(owner) if owner == self.owner_id => return,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_owner_hears_their_own_news_only() {
        let news = ProjectNews::default();
        let mut ada = news.listen(1);
        news.changed(2);
        let heard = tokio::time::timeout(Duration::from_millis(50), ada.changed()).await;
        assert!(heard.is_err(), "ada heard bob's news");
        news.changed(1);
        tokio::time::timeout(Duration::from_secs(5), ada.changed())
            .await
            .expect("ada hears her own news");
    }

    #[tokio::test]
    async fn a_listener_that_fell_behind_is_told_something_changed() {
        let news = ProjectNews::default();
        let mut ada = news.listen(1);
        for _ in 0..BACKLOG + 1 {
            news.changed(2);
        }
        tokio::time::timeout(Duration::from_secs(5), ada.changed())
            .await
            .expect("missed news counts as news");
    }
}
