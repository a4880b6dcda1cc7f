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
    }
}

diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(participants -> rooms (room_id));

diesel::allow_tables_to_appear_in_same_query!(messages, nodes, participants, rooms,);
