// @generated automatically by Diesel CLI.

diesel::table! {
    messages (id) {
        id -> Bigint,
        #[max_length = 63]
        room_id -> Varchar,
        #[max_length = 64]
        user_id -> Varchar,
        body -> Text,
        sent_at -> Datetime,
    }
}

diesel::table! {
    nodes (id) {
        id -> Bigint,
        started_at -> Datetime,
        heartbeat_at -> Datetime,
    }
}

diesel::table! {
    participants (room_id, user_id) {
        #[max_length = 63]
        room_id -> Varchar,
        #[max_length = 64]
        user_id -> Varchar,
        node_id -> Bigint,
        joined_at -> Datetime,
    }
}

diesel::table! {
    room_events (room_id, seq) {
        #[max_length = 63]
        room_id -> Varchar,
        seq -> Bigint,
        #[max_length = 16]
        kind -> Varchar,
        #[max_length = 64]
        user_id -> Varchar,
        attending -> Integer,
        #[max_length = 16]
        reason -> Nullable<Varchar>,
        at -> Datetime,
        relayed_at -> Nullable<Datetime>,
    }
}

diesel::table! {
    rooms (id) {
        #[max_length = 63]
        id -> Varchar,
        #[max_length = 100]
        title -> Varchar,
        capacity -> Integer,
        attending -> Integer,
        #[max_length = 255]
        password_hash -> Nullable<Varchar>,
        #[max_length = 64]
        created_by -> Varchar,
        created_at -> Datetime,
        version -> Bigint,
        last_event_seq -> Bigint,
    }
}

diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(participants -> rooms (room_id));
diesel::joinable!(room_events -> rooms (room_id));

diesel::allow_tables_to_appear_in_same_query!(messages, nodes, participants, room_events, rooms,);
