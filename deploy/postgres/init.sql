-- Run once by the postgres image on its first start (an empty data volume): one database per
-- service, as each service owns its data and shares nothing but Kafka with the others.
CREATE DATABASE order_api;
CREATE DATABASE payment_svc;
CREATE DATABASE inventory_svc;
