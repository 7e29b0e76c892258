//go:build !soak

package main

import "time"

// kafkaOutage is how long TestKafkaOutage keeps the broker down; the soak
// build (-tags soak) uses the 30 s of issue 9.
const kafkaOutage = 5 * time.Second
