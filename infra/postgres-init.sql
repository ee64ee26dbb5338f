-- Runs once, on the first start of an empty postgres volume: Prefect gets its own database.
CREATE DATABASE prefect;
