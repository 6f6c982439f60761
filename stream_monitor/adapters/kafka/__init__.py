"""The confluent-kafka edge: consumer/producer loop, state topic and topic administration."""
