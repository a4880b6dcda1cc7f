// @generated automatically by Diesel CLI.

diesel::table! {
    messages (id) {
        id -> BigInt,
        room_id -> Text,
        user_id -> Text,
        body -> Text,
        sent_at -> Timestamp,
    }
}

diesel::table! {
    nodes (id) {
        id -> BigInt,
        started_at -> Timestamp,
        heartbeat_at -> Timestamp,
    }
}

diesel::table! {
    participants (room_id, user_id) {
        room_id -> Text,
        user_id -> Text,
        node_id -> BigInt,
        joined_at -> Timestamp,
    }
}

diesel::table! {
    room_events (room_id, seq) {
        room_id -> Text,
        seq -> BigInt,
        kind -> Text,
        user_id -> Text,
        attending -> Integer,
        reason -> Nullable<Text>,
        at -> Timestamp,
        relayed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    rooms (id) {
        id -> Text,
        title -> Text,
        capacity -> Integer,
        attending -> Integer,
        password_hash -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        version -> BigInt,
        last_event_seq -> BigInt,
    }
}

diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(participants -> rooms (room_id));
diesel::joinable!(room_events -> rooms (room_id));

diesel::allow_tables_to_appear_in_same_query!(messages, nodes, participants, room_events, rooms,);
