-- One database per service (each service owns its schema and its Alembic history). Run once by
-- the postgres image on an empty data volume.
CREATE DATABASE ledger;
CREATE DATABASE vault;
CREATE DATABASE provider;
CREATE DATABASE payments;
