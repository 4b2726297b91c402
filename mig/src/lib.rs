//! Pure, I/O-free model of NVIDIA MIG shared by the scheduler and the node agent.
