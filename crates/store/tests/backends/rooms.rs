use suda_store::Error;
use suda_store::history::{Channel, HistoryMessage};
use suda_store::rooms::{RoomRole, StoredRoom};

use crate::TestDb;

fn room(name: &str, owner: &str) -> StoredRoom {
    StoredRoom {
        name: name.into(),
        owner: owner.into(),
        topic: "topic".into(),
        password: "".into(),
        invite_only: false,
        created_at_ms: 7,
        operators: Vec::new(),
        invited: Vec::new(),
    }
}

pub(crate) async fn rooms_are_stored_with_their_roles(db: TestDb) {
    let store = db.open().await;
    store.create_room(&room("Lobby", "Alice")).await.unwrap();
    let mut secret = room("vault", "bob");
    secret.password = "door".into();
    secret.invite_only = true;
    store.create_room(&secret).await.unwrap();
    assert!(matches!(
        store.create_room(&room("LOBBY", "carol")).await,
        Err(Error::NameTaken)
    ));
    store.set_room_topic("lobby", "new topic").await.unwrap();
    assert!(matches!(
        store.set_room_topic("missing", "x").await,
        Err(Error::NotFound)
    ));
    store
        .set_room_role("LOBBY", "Dave", RoomRole::Operator, true)
        .await
        .unwrap();
    // Idempotent both ways.
    store
        .set_room_role("lobby", "dave", RoomRole::Operator, true)
        .await
        .unwrap();
    store
        .set_room_role("vault", "erin", RoomRole::Invited, true)
        .await
        .unwrap();
    store
        .set_room_role("vault", "frank", RoomRole::Invited, true)
        .await
        .unwrap();
    store
        .set_room_role("vault", "frank", RoomRole::Invited, false)
        .await
        .unwrap();

    // What a restarted server loads.
    let reopened = db.open().await;
    let rooms = reopened.load_rooms().await.unwrap();
    assert_eq!(rooms.len(), 2);
    assert_eq!(rooms[0].name, "Lobby");
    assert_eq!(rooms[0].owner, "alice");
    assert_eq!(rooms[0].topic, "new topic");
    assert_eq!(rooms[0].operators, ["dave"]);
    assert_eq!(rooms[1].name, "vault");
    assert_eq!(
        (rooms[1].password.as_str(), rooms[1].invite_only),
        ("door", true)
    );
    assert_eq!(rooms[1].invited, ["erin"]);
    assert!(rooms[1].operators.is_empty());

    reopened.delete_room("vault").await.unwrap();
    assert!(matches!(
        reopened.delete_room("vault").await,
        Err(Error::NotFound)
    ));
    assert_eq!(reopened.load_rooms().await.unwrap().len(), 1);
}

pub(crate) async fn room_history_is_per_room(db: TestDb) {
    let store = db.open().await;
    store
        .append_history(vec![
            HistoryMessage::room(1, 10, "alice", "Lobby", "in the lobby"),
            HistoryMessage::room(2, 20, "bob", "kitchen", "in the kitchen"),
            HistoryMessage::broadcast(3, 30, "carol", "to everyone"),
            HistoryMessage::room(4, 40, "dave", "LOBBY", "lobby again"),
        ])
        .await
        .unwrap();
    let lobby = store
        .history(Channel::Room { room: "lobby" }, None, 10)
        .await
        .unwrap();
    let texts: Vec<&str> = lobby.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["in the lobby", "lobby again"]);
    assert_eq!(lobby[0].room_name(), Some("lobby"));
    assert_eq!(lobby[0].recipient(), None);
    let global = store.history(Channel::Global, None, 10).await.unwrap();
    assert_eq!(global.len(), 1, "room messages are not broadcasts");
}
