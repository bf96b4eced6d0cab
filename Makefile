# The two Quickstart commands. Everything they need is installed by the project's own files.
.PHONY: demo test services-up services-down

demo:  ## the main job: demo D1 database -> Kafka -> MariaDB, live writes, verify (0 diffs)
	bash ops/demo.sh

test:  ## lint, types and every test against real Kafka + MariaDB
	bash ops/test.sh

services-up:
	bash ops/services.sh up

services-down:
	bash ops/services.sh down
