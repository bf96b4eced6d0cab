module d1cdc/delayproxy

go 1.21
