use suda_store::Error;
use suda_store::moderation::{ModerationEntry, Sanction, SanctionKind};

use crate::TestDb;

fn sanction(kind: SanctionKind, target: &str, expires_at_ms: Option<i64>) -> Sanction {
    Sanction {
        kind,
        target: target.into(),
        expires_at_ms,
        reason: format!("reason for {target}"),
        actor: "root".into(),
        created_at_ms: 1,
    }
}

pub(crate) async fn sanctions_persist_until_lifted_or_expired(db: TestDb) {
    let store = db.open().await;
    store
        .put_sanction(&sanction(SanctionKind::UserBan, "bob", None))
        .await
        .unwrap();
    store
        .put_sanction(&sanction(SanctionKind::IpBan, "192.0.2.1", Some(1_000)))
        .await
        .unwrap();
    store
        .put_sanction(&sanction(SanctionKind::Mute, "bob", Some(5_000)))
        .await
        .unwrap();
    // Imposing again replaces.
    let mut longer = sanction(SanctionKind::Mute, "bob", Some(9_000));
    longer.reason = "again".into();
    store.put_sanction(&longer).await.unwrap();

    let reopened = db.open().await;
    let in_force = reopened.load_sanctions(2_000).await.unwrap();
    assert_eq!(
        in_force.len(),
        2,
        "the IP ban expired at 1000: {in_force:?}"
    );
    assert_eq!(in_force[0], sanction(SanctionKind::UserBan, "bob", None));
    assert_eq!(in_force[1], longer);
    // Expired ones are gone for good.
    assert_eq!(reopened.load_sanctions(0).await.unwrap().len(), 2);

    reopened
        .remove_sanction(SanctionKind::UserBan, "bob")
        .await
        .unwrap();
    assert!(matches!(
        reopened.remove_sanction(SanctionKind::UserBan, "bob").await,
        Err(Error::NotFound)
    ));
    assert_eq!(reopened.load_sanctions(2_000).await.unwrap(), [longer]);
}

pub(crate) async fn the_moderation_log_keeps_every_action(db: TestDb) {
    let store = db.open().await;
    for (i, action) in ["kick", "ban", "room-kick"].into_iter().enumerate() {
        store
            .log_moderation(&ModerationEntry {
                at_ms: i as i64,
                actor: "root".into(),
                action: action.into(),
                target: "bob".into(),
                room: (action == "room-kick").then(|| "lobby".into()),
                reason: format!("because {i}\0"),
            })
            .await
            .unwrap();
    }
    let log = store.moderation_log(2).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, "room-kick");
    assert_eq!(log[0].room.as_deref(), Some("lobby"));
    assert_eq!(log[0].reason, "because 2\u{FFFD}");
    assert_eq!(log[1].action, "ban");
}
