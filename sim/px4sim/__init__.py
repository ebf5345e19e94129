"""A simulated vehicle that speaks MAVLink the way PX4 does, flown by the project's MuJoCo quadrotor."""
