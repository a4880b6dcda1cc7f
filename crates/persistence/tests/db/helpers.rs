use roomgate_domain::{Capacity, MessageBody, NodeId, RoomId, Title, UserId};
use roomgate_persistence::testing::TestDatabase;
use roomgate_persistence::{Database, JoinGuard, NewRoom};

/// Which database a test body runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Mysql,
    Sqlite,
}

impl Server {
    pub async fn fresh(self) -> TestDatabase {
        match self {
            Server::Mysql => TestDatabase::mysql().await,
            Server::Sqlite => TestDatabase::sqlite(),
        }
    }
}

/// Writes one `#[tokio::test]` per backend for each listed `async fn name(server: Server)`,
/// as `name::mysql` and `name::sqlite`, so the suite is written once and run on both.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                super::$name($crate::helpers::Server::Mysql).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::helpers::Server::Sqlite).await;
            }
        }
    )*};
}
pub(crate) use on_both;

pub async fn connect(test_db: &TestDatabase, guard: JoinGuard) -> Database {
    Database::connect(&test_db.settings(guard))
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", test_db.url()))
}

pub fn room_id(raw: &str) -> RoomId {
    RoomId::parse(raw).unwrap()
}

pub fn user(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

pub fn body(raw: &str) -> MessageBody {
    MessageBody::parse(raw).unwrap()
}

pub fn new_room(id: &str, capacity: u32, creator: &str) -> NewRoom {
    NewRoom {
        id: room_id(id),
        title: Title::parse(&format!("Room {id}")).unwrap(),
        capacity: Capacity::new(capacity, 1_000).unwrap(),
        password: None,
        created_by: user(creator),
    }
}

pub const NODE: NodeId = NodeId(7);

/// Asserts that the stored `attending` equals the number of participant rows.
pub async fn assert_counts_agree(db: &Database, room: &RoomId) -> u32 {
    let record = db.get_room(room).await.unwrap().unwrap();
    let members = db.members(room).await.unwrap();
    assert_eq!(
        record.attending as usize,
        members.len(),
        "attending must equal the number of members of {room}"
    );
    assert!(record.attending <= record.capacity);
    record.attending
}

/// Runs `sql` on the test database beside the `Database` under test (to plant a row no
/// operation would write), waiting for SQLite's lock rather than failing.
pub async fn execute_raw(test_db: &TestDatabase, sql: &str) {
    let url = test_db.url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        use diesel::{Connection as _, RunQueryDsl as _};
        let mut conn = diesel::SqliteConnection::establish(path).unwrap();
        diesel::sql_query("PRAGMA busy_timeout = 5000")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    } else {
        use mysql_async::prelude::Queryable as _;
        let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
        conn.query_drop(sql).await.unwrap();
        conn.disconnect().await.unwrap();
    }
}
