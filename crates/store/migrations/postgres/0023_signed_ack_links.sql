-- Acknowledgement links are signed with the secret key instead of stored (see
-- incidents::ack_token): the table of hashed links goes. Links in pages sent before
-- this version are no longer recognised; the incident is acknowledged in Muster.
DROP TABLE ack_links;
