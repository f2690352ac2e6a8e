module example.org/mnist/sdkcheck

go 1.23

require example.org/mnist/client v0.0.0

// The client is generated from the served OpenAPI document into ../client (see main.go).
replace example.org/mnist/client => ../client
